"""The model architectures this project adds to open_clip: its JSON configs, registered on import.

``demo-tiny-vit`` (``lib/models/configs/demo-tiny-vit.json``) is the demo profile's model, trained by
``lib.models.pretrain``; ``parts-tiny-vit`` (64 px, 8 px patches: an 8x8 grid) the parts world's, trained by
``lib.models.parts_pretrain``. Any other open_clip architecture needs nothing here.
"""
from __future__ import annotations

from pathlib import Path

import open_clip

CONFIG_DIR = Path(__file__).parent / "configs"
DEMO_MODEL = "demo-tiny-vit"
PARTS_MODEL = "parts-tiny-vit"

open_clip.add_model_config(CONFIG_DIR)
