"""What every layer may use: where files live, the profiles, CPU numerics and memory sampling.

Nothing here imports torch at module level (the main job's driver never loads it).
"""
from lib.runtime import locations, memory, numerics, profiles
