"""Prompts as data: CLIP's templates and descriptor files (CuPL format).

* ``IMAGENET_TEMPLATES``: CLIP's 80 ImageNet templates, as open_clip ships them
  (``open_clip.zero_shot_metadata.OPENAI_IMAGENET_TEMPLATES``, callables turned into format strings).
* ``SINGLE_TEMPLATE``: ``"a photo of a {}."`` (CLIP paper; the D-Trap code's template).
* ``DEMO_TEMPLATES``: the four caption templates of the demo world (used for pretraining and for
  zero-shot on it).
* ``load_descriptors``: a CuPL-format JSON ``{"class": ["sentence.", ...]}`` checked against the
  class list: a missing or unknown class is an error that names it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

DESCRIPTOR_DIR = Path(__file__).parent / "descriptors"

IMAGENET_TEMPLATES = tuple(t("{}") for t in OPENAI_IMAGENET_TEMPLATES)
SINGLE_TEMPLATE = ("a photo of a {}.",)
DEMO_TEMPLATES = (
    "a photo of the digit {}.",
    "a handwritten {}.",
    "a picture of the number {}.",
    "a drawing of a {}.",
)


class DescriptorError(ValueError):
    """A descriptor file that does not match the class list; the message names file and class."""


def load_descriptors(path: str | Path, classnames: Sequence[str]) -> list[list[str]]:
    """Read a CuPL-format descriptor JSON; return one list of sentences per class, in class order."""
    path = Path(path)
    try:
        table = json.loads(path.read_text())
    except FileNotFoundError:
        raise DescriptorError(f"descriptor file not found: {path}") from None
    except json.JSONDecodeError as err:
        raise DescriptorError(f"descriptor file {path} is not valid JSON: {err}") from None
    if not isinstance(table, dict):
        raise DescriptorError(f"descriptor file {path} must hold an object {{class: [sentences]}}")
    missing = [c for c in classnames if c not in table]
    unknown = [c for c in table if c not in set(classnames)]
    if missing:
        raise DescriptorError(f"descriptor file {path} has no entry for class(es) {missing}")
    if unknown:
        raise DescriptorError(f"descriptor file {path} names class(es) not in the dataset: {unknown}")
    out = []
    for c in classnames:
        sentences = table[c]
        if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
            raise DescriptorError(f"descriptor file {path}: class {c!r} must map to a list of strings")
        out.append(sentences or [""])  # DCLIP's convention for an empty list
    return out
