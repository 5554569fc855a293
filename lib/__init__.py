"""The companion's shared package; importing it first pins the CPU kernels (``lib.runtime.numerics``).

The folders are the layers, each importing only those before it (``tests/unit/test_architecture.py``):

    runtime  <-  data  <-  models  <-  features  <-  methods  <-  experiments
    report, jobs: runtime only            regenerate.py: the main job's command line

See README.md, "Layout", for one line per module.
"""
from lib.runtime import numerics

numerics.pin()
