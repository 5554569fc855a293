"""Peak memory, measured two ways (shown in notebooks and the run record, never asserted).

* ``ProcessTreePeak``: the peak summed resident memory of this process and its descendants (Dask
  workers, notebook kernels and their job pools), sampled every ``interval`` seconds in a background
  thread: the main job's record (``runs/main_job.json``).
* ``BlockPeak``: the peak memory of one block of code: CUDA's allocator peak on a GPU; on a CPU the
  peak resident set of this process sampled every millisecond, minus its size at entry (an estimate:
  short spikes can be missed). FAIR's cost tables (Fig. 10, Fig. 2) use it.

Neither imports torch at module level: the main job's driver never loads it.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time


class ProcessTreePeak:
    """Peak summed RSS (bytes, ``peak``) of this process and its descendants while the block runs."""

    def __init__(self, interval: float = 0.5):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class BlockPeak:
    """Peak memory (MB, ``peak_mb``) a block adds: CUDA's allocator on a GPU, sampled RSS on a CPU."""

    def __init__(self, device="cpu"):
        import torch

        self._torch = torch
        self.cuda = torch.device(device).type == "cuda"
        self.peak_mb = 0.0

    @staticmethod
    def _rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def __enter__(self):
        if self.cuda:
            self._torch.cuda.reset_peak_memory_stats()
            self._base = self._torch.cuda.memory_allocated() / 2**20
            return self
        self._base = self._peak = self._rss_mb()
        self._stop = threading.Event()

        def sample():
            while not self._stop.is_set():
                self._peak = max(self._peak, self._rss_mb())
                time.sleep(0.001)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self._torch.cuda.synchronize()
            self.peak_mb = self._torch.cuda.max_memory_allocated() / 2**20 - self._base
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mb = max(self._peak, self._rss_mb()) - self._base
        return False
