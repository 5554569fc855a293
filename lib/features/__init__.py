"""Features: the on-disk cache keyed by content, seeded crops, and the text side (templates, descriptors).

Everything a scoring call takes is computed here once and cached: global and crop image features
(``cache``, ``crops``), template-ensemble classifiers and description features (``text``).
"""
from lib.features import cache, crops, text
from lib.features.cache import FeatureCache
