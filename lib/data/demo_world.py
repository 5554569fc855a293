"""The demo world: a small, deterministic image-text world that runs on any CPU, offline.

Images are scikit-learn's handwritten digits (the 1,797 8x8 images that ship with the package)
rendered into one clean *source* domain and graded *target* domains:

* ``clean``   -- a white digit filling most of a black 32 px canvas (the pretraining domain);
* ``clutter`` -- the same digit small inside a 64 px scene with distractor strokes and digit
  fragments around it, so local crops matter (LaZSL, WCA, FAIR's LAS);
* ``colour``  -- the digit coloured on a coloured, striped texture, so unsupervised adaptation has
  something to fix (FAIR) and the target is a real domain shift (CC-CDFSL, D-Trap).

Every shift has a strength knob in [0, 1] (``clutter``, ``colour``, plus the object scale), so the
zero-shot accuracy can be graded between clean and chance and reported as a curve (an earlier design note,
"A measured starting point for the demo world"). Every image knows its digit's bounding box, used
later to score attention maps.

Digits are split once, seeded, into a pretraining pool and a held-out pool: the demo model never
sees a held-out digit, in any domain. The world's text is its own: class names (``CLASSNAMES``),
caption templates (``TEMPLATES``, used for pretraining and for zero-shot on it) and descriptions
(``lib/data/descriptors/demo_digits.json``, CuPL format; ``descriptions``).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from sklearn.datasets import load_digits

from lib.data.base import DESCRIPTOR_DIR, RenderedImages, read_renders, store_renders
from lib.runtime.locations import cache_dir

CLASSNAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEMPLATES = (
    "a photo of the digit {}.",
    "a handwritten {}.",
    "a picture of the number {}.",
    "a drawing of a {}.",
)
DESCRIPTIONS = DESCRIPTOR_DIR / "demo_digits.json"  # CuPL format, keys = CLASSNAMES
WORLD_VERSION = 1  # bump when rendering changes: it is part of every cache key


@dataclass(frozen=True)
class DomainSpec:
    """How one domain renders a digit. All sizes in pixels, strengths in [0, 1]."""

    name: str
    canvas: int = 32
    digit_size: tuple[int, int] = (20, 28)  # side of the rendered digit, drawn uniformly
    clutter: float = 0.0  # distractor count and brightness
    colour: float = 0.0  # blend towards a coloured digit on a coloured texture

    def __post_init__(self):
        for knob in ("clutter", "colour"):
            value = getattr(self, knob)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"domain {self.name!r}: {knob}={value} is outside [0, 1]")
        low, high = self.digit_size
        if not 4 <= low <= high <= self.canvas:
            raise ValueError(
                f"domain {self.name!r}: digit_size={self.digit_size} must satisfy 4 <= low <= high <= canvas={self.canvas}"
            )


# Default strengths: chosen so zero-shot accuracy on each shifted domain lands well above chance and
# well below clean (measured curve in notebooks/01_zero_shot_tables.ipynb).
DOMAINS = {
    "clean": DomainSpec("clean"),
    "clutter": DomainSpec("clutter", canvas=64, digit_size=(24, 30), clutter=0.5),
    "colour": DomainSpec("colour", colour=0.6),
}


def descriptions() -> list[list[str]]:
    """The world's description sentences of each class, in ``CLASSNAMES`` order."""
    table = json.loads(DESCRIPTIONS.read_text())
    return [list(table[c]) for c in CLASSNAMES]


def domain_spec(name: str, **overrides) -> DomainSpec:
    """The named default domain, with knobs overridden (``domain_spec("clutter", clutter=0.8)``)."""
    if name not in DOMAINS:
        raise KeyError(f"unknown demo domain {name!r}; known: {sorted(DOMAINS)}")
    return dataclasses.replace(DOMAINS[name], **overrides)


@functools.cache
def _digits():
    """scikit-learn's digits, parsed once per process (each split reads its labels, pools and glyphs here);
    read-only, as every caller shares them."""
    digits = load_digits()
    for array in (digits.data, digits.images, digits.target):
        array.flags.writeable = False
    return digits


def digit_pools(seed: int = 0, held_out: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """Split the 1,797 digits once: (pretraining pool, held-out pool) indices, class-stratified."""
    digits = _digits()
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(10):
        idx = np.flatnonzero(digits.target == c)
        rng.shuffle(idx)
        n_test = int(round(held_out * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _digit_glyph(pixels: np.ndarray, side: int) -> np.ndarray:
    """An 8x8 digit (values 0..16) upscaled to side x side, values in [0, 1]."""
    small = Image.fromarray((pixels / 16.0 * 255).astype(np.uint8), mode="L")
    return np.asarray(small.resize((side, side), Image.BICUBIC), dtype=np.float32) / 255.0


def _clutter_layer(rng, canvas: int, box, strength: float, all_pixels: np.ndarray) -> np.ndarray:
    """Distractor strokes and digit fragments placed around (not on) the object's box."""
    layer = np.zeros((canvas, canvas), np.float32)
    n_items = int(round(14 * strength))
    x0, y0, x1, y1 = box
    for _ in range(n_items):
        brightness = rng.uniform(0.4, 0.4 + 0.6 * strength)
        for _try in range(20):  # keep distractor centres off the object
            cx, cy = rng.uniform(0, canvas, size=2)
            if not (x0 - 4 <= cx <= x1 + 4 and y0 - 4 <= cy <= y1 + 4):
                break
        if rng.random() < 0.5:  # a stroke
            img = Image.new("L", (canvas, canvas))
            angle = rng.uniform(0, np.pi)
            half = rng.uniform(3, 9)
            dx, dy = half * np.cos(angle), half * np.sin(angle)
            ImageDraw.Draw(img).line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=255, width=2)
            item = np.asarray(img, np.float32) / 255.0
        else:  # a fragment of another digit: the left, right, top or bottom half
            glyph = _digit_glyph(all_pixels[rng.integers(len(all_pixels))], int(rng.integers(12, 20)))
            side = glyph.shape[0]
            half = side // 2
            part = rng.integers(4)
            frag = np.zeros_like(glyph)
            if part == 0:
                frag[:, :half] = glyph[:, :half]
            elif part == 1:
                frag[:, half:] = glyph[:, half:]
            elif part == 2:
                frag[:half] = glyph[:half]
            else:
                frag[half:] = glyph[half:]
            item = np.zeros((canvas, canvas), np.float32)
            ox = int(np.clip(cx - half, 0, canvas - side))
            oy = int(np.clip(cy - half, 0, canvas - side))
            item[oy:oy + side, ox:ox + side] = frag
        layer = np.maximum(layer, brightness * item)
    return layer


def _texture(rng, canvas: int) -> np.ndarray:
    """A coloured striped texture (canvas, canvas, 3) in [0, 1]."""
    yy, xx = np.mgrid[0:canvas, 0:canvas].astype(np.float32)
    pattern = np.zeros((canvas, canvas), np.float32)
    for _ in range(2):
        angle = rng.uniform(0, np.pi)
        freq = rng.uniform(0.15, 0.6)
        phase = rng.uniform(0, 2 * np.pi)
        pattern += np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy) + phase)
    pattern = (pattern - pattern.min()) / (np.ptp(pattern) + 1e-6)
    c1, c2 = rng.uniform(0, 1, size=(2, 3)).astype(np.float32)
    return pattern[..., None] * c1 + (1 - pattern[..., None]) * c2


def render(spec: DomainSpec, digit_indices: np.ndarray, seed: int):
    """Render one image per digit index. Returns (images uint8 (N,H,W,3), labels (N,), boxes (N,4) xyxy)."""
    digits = _digits()
    rng = np.random.default_rng([seed, WORLD_VERSION, int(hashlib.sha256(spec.name.encode()).hexdigest()[:8], 16)])
    n, canvas = len(digit_indices), spec.canvas
    images = np.zeros((n, canvas, canvas, 3), np.uint8)
    boxes = np.zeros((n, 4), np.int64)
    for i, d in enumerate(digit_indices):
        side = int(rng.integers(spec.digit_size[0], spec.digit_size[1] + 1))
        ox, oy = (int(v) for v in rng.integers(0, canvas - side + 1, size=2))
        mask = np.zeros((canvas, canvas), np.float32)
        mask[oy:oy + side, ox:ox + side] = _digit_glyph(digits.images[d], side)
        box = (ox, oy, ox + side, oy + side)
        gray = mask
        if spec.clutter > 0:
            gray = np.maximum(mask, _clutter_layer(rng, canvas, box, spec.clutter, digits.images))
        rgb = np.repeat(gray[..., None], 3, axis=2)
        if spec.colour > 0:
            fg = rng.uniform(0.3, 1.0, size=3).astype(np.float32)
            shifted = _texture(rng, canvas) * (1 - gray[..., None]) + fg * gray[..., None]
            rgb = (1 - spec.colour) * rgb + spec.colour * shifted
        images[i] = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)
        boxes[i] = box
    return images, digits.target[digit_indices].astype(np.int64), boxes


class DemoDataset(RenderedImages):
    """One split of one demo domain: PIL images, labels, boxes, and a content fingerprint. Labels and the
    fingerprint come from the digit pool alone; the images and boxes are rendered when first read."""

    def __init__(self, spec: DomainSpec, split: str, n: int | None = None, seed: int = 0):
        if split not in ("train", "test"):
            raise ValueError(f"demo split must be 'train' or 'test', got {split!r}")
        pretrain_pool, held_out = digit_pools(seed)
        pool = pretrain_pool if split == "train" else held_out
        if n is not None:
            if n > len(pool):
                raise ValueError(f"demo {spec.name}/{split}: n={n} exceeds the {len(pool)} digits in the pool")
            pool = np.random.default_rng([seed, 7]).choice(pool, size=n, replace=False)
        self.spec, self.split, self.seed = spec, split, seed
        self.name = f"demo-{spec.name}"
        self.classnames = list(CLASSNAMES)
        self.digit_indices = pool
        self.labels = torch.from_numpy(_digits().target[pool].astype(np.int64))
        self._rendered: tuple[np.ndarray, torch.Tensor] | None = None

    def _render(self) -> tuple[np.ndarray, torch.Tensor]:
        """(images, boxes), rendered on first use (a run whose features are all cached never draws them)
        and stored under the cache, as the parts world's renders, for later processes (0.3-2 s a split)."""
        if self._rendered is None:
            n, canvas, path = len(self.digit_indices), self.spec.canvas, self.render_path()
            arrays = read_renders(path, "digits-world", {"images": (n, canvas, canvas, 3), "boxes": (n, 4)})
            if arrays is None:
                # train and test renders use different streams, so the same digit never looks the same twice
                images, _, boxes = render(self.spec, self.digit_indices, seed=self.seed * 2 + (self.split == "test"))
                arrays = {"images": images, "boxes": boxes}
                store_renders(path, "digits-world", arrays)
            self._rendered = arrays["images"], torch.from_numpy(arrays["boxes"])
        return self._rendered

    def render_path(self) -> Path:
        """Where this split's renders are stored: ``<cache>/demo-renders/<fingerprint>.npz``."""
        return cache_dir() / "demo-renders" / f"{self.fingerprint}.npz"

    @property
    def images(self) -> np.ndarray:
        return self._render()[0]

    @property
    def boxes(self) -> torch.Tensor:
        return self._render()[1]

    def fingerprint_header(self) -> dict:
        """Everything that determines the images: spec, split, pool, seed, version."""
        return {"spec": dataclasses.asdict(self.spec), "split": self.split, "seed": self.seed,
                "digits": self.digit_indices.tolist(), "version": WORLD_VERSION}
