"""The same numbers on every x86 CPU: torch, oneDNN and MKL kernels capped at AVX2.

torch picks its vectorised CPU kernels (and oneDNN and MKL theirs) by what the processor offers:
AVX-512 where it has it, AVX2 elsewhere. The two sum in different orders, so the last bits of a float
differ, and a seeded training run (the demo model's pretraining, FAIR, the CDFSL episodes) drifts to
visibly different numbers: measured here, the demo model pretrained with AVX-512 kernels moved CLIP's
accuracy on demo-clutter from 28.79 to 30.60. Every committed output is produced with AVX2 kernels,
which every x86-64 CPU of the last decade runs, so ``pin`` sets these variables before torch computes
anything (``lib`` is imported first by every entry point: notebooks, the main job, the tests; the
variables are read at the first computation, not at ``import torch``). Set them yourself to override
(e.g. ``ATEN_CPU_CAPABILITY=default`` for AVX-512 speed, at the cost of numbers that differ from the
committed ones). GPUs are not affected.
"""
from __future__ import annotations

import contextlib
import os

CPU_ISA = {
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own vectorised kernels
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN (convolutions, some matmuls)
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # MKL BLAS
}


def pin() -> None:
    """Set each variable of ``CPU_ISA`` unless the environment already sets it (children inherit them)."""
    for key, value in CPU_ISA.items():
        os.environ.setdefault(key, value)


# The same numbers whatever the core count: torch splits a reduction among its intra-op threads, so a
# seeded training run gives other last bits, then other weights, with another thread count (measured:
# four steps of the parts model's pretraining end in other weights with 1 thread than with 2). The demo
# checkpoints and every demo-profile kernel compute with this many threads (the profiles' ``cpu_threads``;
# the main job's kernels would otherwise inherit Dask's OMP_NUM_THREADS=1, nbval's the machine's count);
# the training runs of ``lib.experiments.job_pool`` run one thread per worker process, as they always did.
CPU_THREADS = 2


@contextlib.contextmanager
def threads(n: int | None):
    """Run the block with ``n`` torch intra-op threads (None: leave the count as it is), then restore it."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
