"""Datasets: one reader per on-disk layout, the registry that names them, and the demo world.

``load_dataset(name, split)`` reads a real dataset under ``$DATA_ROOT``; ``open_datasets`` and
``available`` resolve the names notebooks use (``demo-<domain>`` for the demo world); ``subset`` draws
seeded evaluation subsets. ``DESCRIPTOR_DIR`` holds the descriptions written for this project.
"""
from lib.data.base import DESCRIPTOR_DIR, SPLITS, DatasetError, ImageListDataset
from lib.data.registry import READERS, canonical_name, known_names, layout_of, load_dataset
from lib.data.resolve import (DEMO_PREFIX, PARTS_PREFIX, Subset, available, demo_dataset, open_datasets, parts_dataset,
                              subset)
