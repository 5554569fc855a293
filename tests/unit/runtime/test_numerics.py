"""lib.runtime.numerics: importing lib caps torch's CPU kernels at AVX2 (the committed outputs' kernels),
even when torch was imported first, and leaves a user's own setting alone."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = "import torch, lib; torch.ones(3) + 1; print(torch.backends.cpu.get_cpu_capability())"


def _has_avx2() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    return platform.machine() in ("x86_64", "AMD64") and cpuinfo.is_file() and " avx2" in cpuinfo.read_text()


def _capability(**env) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
                                                                "MKL_ENABLE_INSTRUCTIONS")}
    return subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.skipif(not _has_avx2(), reason="an x86-64 CPU with AVX2 is needed to check the cap")
def test_importing_lib_after_torch_caps_kernels_at_avx2():
    assert _capability() == "AVX2"


@pytest.mark.skipif(not _has_avx2(), reason="an x86-64 CPU with AVX2 is needed to check the cap")
def test_a_users_own_setting_wins():
    assert _capability(ATEN_CPU_CAPABILITY="default") != "AVX2" or "avx512f" not in Path("/proc/cpuinfo").read_text()
