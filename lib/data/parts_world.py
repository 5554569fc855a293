"""The parts world: a seeded, offline image-text world whose classes are made of parts (issue 18).

Every object is a small creature of three parts laid out left to right, each with one attribute of
three values and its own box (xyxy, image pixels):

* ``head`` (left)   -- its *shape*: round, pointed or square (an ivory shape with a dark outline);
* ``body`` (middle) -- its *pattern*: striped, spotted or checked (dark marks on a light grey oval);
* ``tail`` (right)  -- its *colour*: red, green or blue (a fan).

Each part carries exactly one attribute and the attributes do not share a cue (shape / texture /
colour), so a part's description is true of one image region only: the text tower learns it from
crops of that region (``lib.models.parts_pretrain``) and LaZSL's transport plan can be checked
against the boxes (``lib.methods.part_alignment``).

Classes are combinations of part values in groups of three *siblings* that share two parts and
differ in the third (the CUB situation LaZSL's fine-grained results rest on: species of one genus
differ in a wing bar or a crown). ``BASE_CLASSES`` (12 classes, 4 groups, invented names) are the
pretraining world. ``NOVEL_CLASSES`` (9 classes, 3 groups) are combinations never rendered in
pretraining (every part *value* was seen, the combination and its family name were not): the
cross-domain few-shot target. Novel classes are named after their distinguishing value ("spotted
grell"), like CUB's "red-winged blackbird", so class-name zero-shot has some signal to start from.

Domains (``DOMAINS``; every shift has a strength knob in [0, 1], 0 = clean), drawn by
``lib.data.parts_images``:

* ``clean``   -- the object fills most of a plain 128 px canvas (the pretraining / source domain);
* ``fine``    -- fine-grained: the class's *distinguishing* part (the one its siblings vary) is drawn
  small, its detail scaled down too, so at the model's 64 px the full view barely resolves it while a
  zoomed crop of the 128 px image does (small parts in a high-resolution image seen by a
  low-resolution model);
* ``clutter`` -- the object small in the scene, among loose distractor parts of every value;
* ``colour``  -- a style shift for unsupervised adaptation (FAIR): hue rotation, a coloured textured
  background and a loss of contrast;
* ``novel``   -- the cross-domain few-shot target: ``NOVEL_CLASSES`` under a "sketch" style shift
  (faded fills, paper background, pencil noise), part boxes included.

Descriptions (``descriptions(classes, fmt)``): one per part per class, in CuPL's format (full
sentences) and DCLIP's (descriptors starting with "has", which DCLIP's rule turns into "crested vorn,
which has a red tail"); committed as ``lib/data/descriptors/parts_world_*.json``
(``write_descriptor_files``; a test checks the files equal what this module writes).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from lib.data.base import DESCRIPTOR_DIR


PARTS = ("head", "body", "tail")
VALUES = {
    "head": ("round", "pointed", "square"),
    "body": ("striped", "spotted", "checked"),
    "tail": ("red", "green", "blue"),
}
# the part phrase of each (part, value): the caption of a part crop in pretraining
PHRASES = {(p, v): f"a {v} {p}" for p in PARTS for v in VALUES[p]}


@dataclass(frozen=True)
class ClassDef:
    """One class: its invented name, its part values (indices into VALUES) and its sibling group."""

    name: str
    values: tuple[int, int, int]  # (head, body, tail)
    group: str  # the family name shared by the siblings
    varies: str  # the part the siblings differ in: this class's distinguishing part

    def value(self, part: str) -> str:
        return VALUES[part][self.values[PARTS.index(part)]]


def _group(family: str, prefixes: tuple[str, str, str] | None, fixed: dict[str, int], varies: str) -> list[ClassDef]:
    """Three siblings: ``fixed`` gives two part values, the third part takes each of its values.

    ``prefixes`` None: each sibling is named after its distinguishing value ("spotted grell"), as many
    real class names are ("red-winged blackbird").
    """
    out = []
    for k in range(3):
        vals = tuple(fixed.get(p, k) if p != varies else k for p in PARTS)
        prefix = VALUES[varies][k] if prefixes is None else prefixes[k]
        out.append(ClassDef(f"{prefix} {family}", vals, family, varies))
    return out


# 12 pretraining classes in 4 groups of 3 siblings (each group varies another part; tail twice)
BASE_CLASSES: tuple[ClassDef, ...] = tuple(
    _group("vorn", ("crested", "dusky", "pale"), {"head": 0, "body": 0}, "tail")      # 000 001 002
    + _group("quill", ("amber", "brindled", "cinder"), {"body": 1, "tail": 0}, "head")  # 010 110 210
    + _group("mab", ("fenny", "gorse", "hollow"), {"head": 1, "tail": 1}, "body")       # 101 111 121
    + _group("tessel", ("lanky", "marsh", "nimble"), {"body": 2, "tail": 2}, "head")    # 022 122 222
)
# 9 classes never rendered in pretraining (new combinations, unseen family names): the few-shot
# target. Each is named after its distinguishing value ("spotted grell"): the family word was never
# seen, the value word only in part captions ("a spotted body"), so class-name zero-shot lands above
# chance and far below clean (measured: 25% of 9 classes with r5; invented adjectives gave 7%).
NOVEL_CLASSES: tuple[ClassDef, ...] = tuple(
    _group("grell", None, {"head": 2, "tail": 1}, "body")  # 201 211 221: striped / spotted / checked grell
    + _group("pim", None, {"body": 1, "tail": 2}, "head")  # 012 112 212: round / pointed / square pim
    + _group("zask", None, {"body": 2, "tail": 0}, "head")  # 020 120 220: round / pointed / square zask
)
assert len({c.values for c in BASE_CLASSES + NOVEL_CLASSES}) == 21, "a class combination repeats"
assert len({c.name for c in BASE_CLASSES + NOVEL_CLASSES}) == 21, "a class name repeats"


# --------------------------------------------------------------------------------------------------
# Descriptions


def descriptions(classes=BASE_CLASSES, fmt: str = "dclip") -> dict[str, list[str]]:
    """One description per part per class, in the order of PARTS.

    ``fmt="dclip"``: short descriptors starting with "has" ("has a red tail"), which DCLIP's rule
    (``lib.prompts.dclip_sentence``) turns into "crested vorn, which has a red tail";
    ``fmt="cupl"``: full sentences ("A crested vorn has a tail that is red.").
    """
    if fmt not in ("dclip", "cupl"):
        raise ValueError(f"fmt must be 'dclip' or 'cupl', got {fmt!r}")
    cupl = {
        "head": "A {c} has a head that is {v}.",
        "body": "A {c} has a body that is {v}.",
        "tail": "A {c} has a tail that is {v}.",
    }
    out = {}
    for c in classes:
        if fmt == "dclip":
            out[c.name] = [f"has {PHRASES[(p, c.value(p))]}" for p in PARTS]
        else:
            out[c.name] = [cupl[p].format(c=c.name, v=c.value(p)) for p in PARTS]
    return out


def dclip_sentence(classname: str, descriptor: str) -> str:
    """DCLIP's sentence for a descriptor that starts with "has": ``"{class}, which has ..."`` (no period).

    ``lib.features.descriptors.dclip_sentence`` is the rule for any descriptor; this world's
    descriptors all start with "has", where the rule reads "which", and the pretraining (a lower
    layer) needs the sentences too. ``tests/unit/data/test_parts_world.py`` checks the two agree.
    """
    if not descriptor.startswith("has "):
        raise ValueError(f"parts-world descriptor {descriptor!r} must start with 'has '")
    return f"{classname}, which {descriptor}"


def description_sentences(classes=BASE_CLASSES, fmt: str = "dclip") -> list[list[str]]:
    """Per class (in ``classes`` order) the sentences a text tower encodes: DCLIP's or CuPL's."""
    table = descriptions(classes, fmt)
    if fmt == "dclip":
        return [[dclip_sentence(c.name, d) for d in table[c.name]] for c in classes]
    return [table[c.name] for c in classes]


TEMPLATES = (  # class-name templates: pretraining captions and zero-shot prompts
    "a photo of a {}.",
    "a picture of the {}.",
    "a drawing of a {}.",
    "an image of a {}.",
)


def write_descriptor_files(folder: str | Path = DESCRIPTOR_DIR) -> list[Path]:
    """parts_world_{base,novel}_{cupl,dclip}.json in ``folder`` (CuPL / DCLIP formats)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for tag, classes in (("base", BASE_CLASSES), ("novel", NOVEL_CLASSES)):
        for fmt in ("cupl", "dclip"):
            path = folder / f"parts_world_{tag}_{fmt}.json"
            path.write_text(json.dumps(descriptions(classes, fmt), indent=2) + "\n")
            written.append(path)
    return written


# --------------------------------------------------------------------------------------------------
# Domains


@dataclass(frozen=True)
class DomainSpec:
    """How one domain renders. Sizes are fractions of the canvas; every strength lies in [0, 1]."""

    name: str
    canvas: int = 128
    object_width: tuple[float, float] | None = None  # object width / canvas, uniform; None: from clutter
    classes: str = "base"  # "base" (BASE_CLASSES) or "novel" (NOVEL_CLASSES)
    fine: float = 0.0  # shrink of the distinguishing part (0: none, 1: to FINE_MIN_SCALE)
    occlude: float = 0.0  # share of the distinguishing part hidden by a leaf (0 in every default domain)
    clutter: float = 0.0  # number of distractor parts (CLUTTER_MAX at 1)
    colour: float = 0.0  # hue rotation, textured background, lost contrast
    sketch: float = 0.0  # faded fills, paper background, pencil noise

    def __post_init__(self):
        for knob in ("fine", "occlude", "clutter", "colour", "sketch"):
            value = getattr(self, knob)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"domain {self.name!r}: {knob}={value} is outside [0, 1]")
        low, high = self.width_range
        if not 0.2 <= low <= high <= 1.0:
            raise ValueError(f"domain {self.name!r}: object_width={self.object_width} must satisfy 0.2 <= low <= high <= 1")
        if self.classes not in ("base", "novel"):
            raise ValueError(f"domain {self.name!r}: classes must be 'base' or 'novel', got {self.classes!r}")

    @property
    def width_range(self) -> tuple[float, float]:
        """Object width / canvas: given, or clean's range shrunk towards SMALL_WIDTH with the clutter."""
        if self.object_width is not None:
            return tuple(self.object_width)
        s = self.clutter
        return tuple((1 - s) * c + s * m for c, m in zip(CLEAN_WIDTH, SMALL_WIDTH))

    @property
    def class_defs(self) -> tuple[ClassDef, ...]:
        return BASE_CLASSES if self.classes == "base" else NOVEL_CLASSES


CLEAN_WIDTH = (0.78, 0.94)  # object width / canvas in the clean domain
SMALL_WIDTH = (0.42, 0.52)  # ... and at clutter = 1
FINE_MIN_SCALE = 0.3  # the distinguishing part's scale at fine = 1
CLUTTER_MAX = 10  # distractor parts at clutter = 1
HUE_MAX = 0.16  # hue rotation (fraction of the colour circle) at colour = 1

# Default strengths: each shifted domain lands well below clean and well above chance with the
# pretrained parts model (measured over 3 seeds; notebook 05 shows the table)
DOMAINS = {
    "clean": DomainSpec("clean"),
    "fine": DomainSpec("fine", fine=0.8),
    "clutter": DomainSpec("clutter", clutter=0.5),
    "colour": DomainSpec("colour", colour=0.6),
    "novel": DomainSpec("novel", classes="novel", sketch=0.6),
}


def domain_spec(name: str, **overrides) -> DomainSpec:
    """The named default domain with knobs overridden (``domain_spec("fine", fine=0.5)``)."""
    if name not in DOMAINS:
        raise KeyError(f"unknown parts-world domain {name!r}; known: {sorted(DOMAINS)}")
    return dataclasses.replace(DOMAINS[name], **overrides)


# --------------------------------------------------------------------------------------------------
# Ground-truth geometry

COVER = 0.6  # a view (crop) *covers* a part when it holds >= 60% of the part's box (pretraining and measures)


def cover_fraction(view_boxes: torch.Tensor, part_boxes: torch.Tensor) -> torch.Tensor:
    """(B, N, P): the share of part p's box (image b) inside view n; view_boxes (B, N, 4) and part_boxes
    (B, P, 4) are xyxy in the same image pixels."""
    vb = view_boxes[:, :, None, :].double()  # exact for integer pixel boxes
    pb = part_boxes[:, None, :, :].double()
    iw = (torch.minimum(vb[..., 2], pb[..., 2]) - torch.maximum(vb[..., 0], pb[..., 0])).clamp(min=0)
    ih = (torch.minimum(vb[..., 3], pb[..., 3]) - torch.maximum(vb[..., 1], pb[..., 1])).clamp(min=0)
    area = ((pb[..., 2] - pb[..., 0]) * (pb[..., 3] - pb[..., 1])).clamp(min=1)
    return iw * ih / area
