"""lib.runtime.machine: the fingerprint the committed outputs are compared under."""
from __future__ import annotations

import json
from importlib import metadata

from lib.runtime import machine

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu avx avx2 avx512f amx_tile

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: another core
"""


def test_cpu_reads_the_first_processor_and_its_kernel_families():
    assert machine.cpu(CPUINFO) == {"vendor_id": "GenuineIntel", "cpu family": "6", "model": "143",
                                    "model name": "Intel(R) Xeon(R) Platinum 8488C",
                                    "flags": ["avx2", "avx512f", "amx_tile"]}


def test_same_numerics_only_on_the_same_fingerprint():
    here = machine.fingerprint(CPUINFO)
    assert machine.same_numerics(dict(here), here) is None
    other = {**here, "cpu": {**here["cpu"], "model": "106"}}
    why = machine.same_numerics(other, here)
    assert '"model": "106"' in why and '"model": "143"' in why
    assert "record no machine" in machine.same_numerics(None, here)


def test_write_is_the_same_bytes_twice(tmp_path):
    first = machine.write(tmp_path).read_bytes()
    assert machine.write(tmp_path).read_bytes() == first
    assert json.loads(first) == machine.fingerprint()


def test_torch_build_keeps_the_local_tag_the_metadata_drops():
    assert machine.torch_build("__version__ = '2.14.1+cu130'\ndebug = False\n") == "2.14.1+cu130"
    assert machine.torch_build('__version__ = "2.14.1+cpu"\n') == "2.14.1+cpu"
    assert machine.torch_build("no version here") == metadata.version("torch")  # falls back to the metadata
    assert machine.fingerprint()["torch"].startswith(metadata.version("torch").split("+")[0])
