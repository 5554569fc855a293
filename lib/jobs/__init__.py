"""The main job's machinery: notebook tasks, resume state, the Dask cluster, grids and the run record.

``lib.regenerate`` is its command line. Nothing here imports torch: the driver stays small, and every
computation happens in the notebooks' kernels.
"""
