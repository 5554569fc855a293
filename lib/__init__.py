"""The companion's shared package; importing it first pins the CPU kernels (``lib.cpu_numerics``)."""
from lib import cpu_numerics

cpu_numerics.pin()
