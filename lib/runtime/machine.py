"""Which machine computed the committed outputs: the processor and the torch build behind their last bits.

``lib.runtime.numerics`` pins what can be pinned (AVX2 kernels, the thread count), and on one machine
two runs give the same bytes. Across processor models they do not: MKL and oneDNN choose their blocking
and kernels by the processor even at a capped ISA, a seeded training run then sums in another order,
and the weights end elsewhere. Measured (issue 18): the same commit, the same torch 2.14.1 build, 2
threads, AVX2, pretrained on two processor models: the parts model's final loss 3.0375 against 3.0479,
CLIP on demo-clean 90.96 against 90.13, FAIR on parts-colour@0.4 64.0 against 61.0. So the main job
records ``fingerprint()`` beside the figures it writes (``figures/machine.json``), and the test that
compares a fresh run with the committed outputs compares them exactly only on a machine with the
same fingerprint; elsewhere it says why it cannot (``same_numerics``).

Read from ``/proc/cpuinfo`` and the installed torch's ``version.py``, without importing torch: the main job
never imports it (``lib.regenerate``).
"""
from __future__ import annotations

import json
import platform
import re
from importlib import metadata
from pathlib import Path

from lib.runtime.locations import atomic_write

FILE = "machine.json"  # in the figures root, beside the outputs it describes
CPU_FIELDS = ("vendor_id", "cpu family", "model", "model name")  # what tells processor models apart
ISA_FLAGS = ("avx2", "avx512f", "avx512_fp16", "amx_tile")  # kernel families MKL and oneDNN dispatch on


def cpu(cpuinfo: str | None = None) -> dict:
    """The first processor's ``CPU_FIELDS`` and which ``ISA_FLAGS`` it has (``/proc/cpuinfo``; on a
    system without it, ``platform.processor()``)."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        if not path.is_file():
            return {"processor": platform.processor() or platform.machine()}
        cpuinfo = path.read_text()
    first = cpuinfo.split("\n\n")[0]
    fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    return {**{k: fields.get(k, "") for k in CPU_FIELDS}, "flags": [f for f in ISA_FLAGS if f in flags]}


def torch_build(version_py: str | None = None) -> str:
    """The installed torch's full version with its local build tag (``2.14.1+cu130``, ``2.14.1+cpu``), read
    from ``torch/version.py`` (``version_py``: that file's text); the package metadata drops the tag on some
    wheels, and a CPU and a CUDA build of one version link other libraries."""
    try:
        dist = metadata.distribution("torch")
    except metadata.PackageNotFoundError:
        return "not installed"
    if version_py is None:
        path = Path(str(dist.locate_file("torch/version.py")))
        version_py = path.read_text() if path.is_file() else ""
    found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", version_py, re.M)
    return found.group(1) if found else dist.version


def fingerprint(cpuinfo: str | None = None) -> dict:
    """The processor (``cpu``), the machine type and the torch build (``torch_build``: the version and the
    local tag that together name the MKL, oneDNN and CUDA it links)."""
    return {"cpu": cpu(cpuinfo), "machine": platform.machine(), "torch": torch_build()}


def write(folder: Path) -> Path:
    """``fingerprint()`` as ``folder/machine.json`` (sorted keys: the same machine, the same bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(fingerprint(), indent=1, sort_keys=True) + "\n"
    return atomic_write(folder / FILE, lambda f: f.write(text.encode()))


def same_numerics(recorded: dict | None, here: dict | None = None) -> str | None:
    """None where ``here`` (default: this machine) computes as the ``recorded`` machine did; else why not."""
    here = here or fingerprint()
    if not recorded:
        return "the committed outputs record no machine (figures/machine.json)"
    if recorded == here:
        return None
    return (f"the committed outputs were computed on {json.dumps(recorded, sort_keys=True)}, this is "
            f"{json.dumps(here, sort_keys=True)}: seeded training gives other last bits on another processor "
            f"or torch build (lib.runtime.machine)")
