"""Rendering the parts world (``lib.data.parts_world``) and its datasets (``PartsWorld``).

Images are drawn at 128 px with PIL and numpy (the model sees 64 px), so random crops of the original
image hold more detail than the full view, as on real datasets. Each image has its own generator,
seeded with (seed, split, domain, image index, ``WORLD_VERSION``): train and test are disjoint renders,
any image can be re-rendered alone, and a dataset's ``fingerprint`` keys the feature cache by content.

Rendering is the slow part of a warm run (about 8 ms an image: a test split of 300 images takes 2.4 s,
and notebook 05 opens dozens of splits), so a rendered split is stored under
``$COMPANION_CACHE/parts-renders/<fingerprint>.npz`` and read back (tens of milliseconds) by any later
process. The fingerprint covers everything that determines the pixels, ``WORLD_VERSION`` included,
exactly as it does for the features cached from those pixels.
"""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import torch
from PIL import Image, ImageDraw

from lib.data.base import RenderedImages, read_renders, store_renders
from lib.runtime.locations import cache_dir
from lib.data.parts_world import (CLEAN_WIDTH, CLUTTER_MAX, FINE_MIN_SCALE, HUE_MAX, PARTS, SMALL_WIDTH, VALUES,
                                  ClassDef, DomainSpec, domain_spec)

WORLD_VERSION = 2  # bump when rendering changes: it is part of every fingerprint

HEAD_FILL = np.array([232, 222, 186], np.float32)
BODY_FILL = np.array([196, 196, 200], np.float32)
MARK = np.array([52, 52, 60], np.float32)
OUTLINE = np.array([36, 36, 40], np.float32)
TAIL_COLOURS = {"red": (214, 44, 40), "green": (44, 168, 64), "blue": (52, 84, 214)}


def _mask(canvas: int, draw_fn) -> np.ndarray:
    """A (canvas, canvas) float mask in [0, 1] drawn by ``draw_fn(ImageDraw)``."""
    img = Image.new("L", (canvas, canvas), 0)
    draw_fn(ImageDraw.Draw(img))
    return np.asarray(img, np.float32) / 255.0


def _paint(rgb: np.ndarray, mask: np.ndarray, colour) -> None:
    """Alpha-blend a flat colour (3,) or an image (H, W, 3) into ``rgb`` where ``mask`` is set."""
    m = mask[..., None]
    rgb *= 1 - m
    rgb += m * colour


def _head_shape(draw: ImageDraw.ImageDraw, shape: str, box, fill: int = 255) -> None:
    x0, y0, x1, y1 = box
    if shape == "round":
        draw.ellipse(box, fill=fill)
    elif shape == "pointed":  # a triangle pointing away from the body (left)
        draw.polygon([(x0, (y0 + y1) / 2), (x1, y0), (x1, y1)], fill=fill)
    else:  # square, a little inset so its area is close to the others'
        inset = 0.06 * (x1 - x0)
        draw.rectangle((x0 + inset, y0 + inset, x1 - inset, y1 - inset), fill=fill)


def _pattern(canvas: int, pattern: str, box, period: float, rng) -> np.ndarray:
    """Marks of a body pattern on the canvas (float mask), phase drawn at random, clipped to ``box``."""
    yy, xx = np.mgrid[0:canvas, 0:canvas].astype(np.float32)
    px, py = rng.uniform(0, period, size=2)
    u, v = (xx - box[0] + px) / period, (yy - box[1] + py) / period
    if pattern == "striped":
        marks = (np.mod(u, 1.0) < 0.45).astype(np.float32)
    elif pattern == "spotted":
        du, dv = np.mod(u, 1.0) - 0.5, np.mod(v, 1.0) - 0.5
        marks = (du ** 2 + dv ** 2 < 0.28 ** 2).astype(np.float32)
    else:  # checked
        marks = ((np.floor(u * 1.0) + np.floor(v * 1.0)) % 2 == 0).astype(np.float32)
    inside = np.zeros_like(marks)
    x0, y0, x1, y1 = (int(round(b)) for b in box)
    inside[max(y0, 0):y1, max(x0, 0):x1] = 1
    return marks * inside


def _clip_box(box, canvas: int) -> list[int]:
    x0, y0, x1, y1 = box
    return [int(np.clip(np.floor(x0), 0, canvas - 1)), int(np.clip(np.floor(y0), 0, canvas - 1)),
            int(np.clip(np.ceil(x1), 1, canvas)), int(np.clip(np.ceil(y1), 1, canvas))]


def _draw_part(rgb, canvas, part: str, value: str, box, rng, detail: float = 1.0, patch=None) -> None:
    """Draw one part into ``rgb``; ``box`` is where the part's evidence lies (for the body: its pattern
    ``patch``, the oval's own box otherwise); ``detail`` scales the pattern period."""
    jitter = rng.uniform(-14, 14, size=3).astype(np.float32)
    if part == "head":
        outline = _mask(canvas, lambda d: _head_shape(d, value, box))
        x0, y0, x1, y1 = box
        w = max(1.0, 0.07 * (x1 - x0))
        inner = _mask(canvas, lambda d: _head_shape(d, value, (x0 + w, y0 + w * (1.6 if value == "pointed" else 1),
                                                                  x1 - w, y1 - w * (1.6 if value == "pointed" else 1))))
        _paint(rgb, outline, OUTLINE)
        _paint(rgb, inner, np.clip(HEAD_FILL + jitter, 0, 255))
    elif part == "body":
        oval = box if patch is None else patch[0]
        _paint(rgb, _mask(canvas, lambda d: d.ellipse(oval, fill=255)), OUTLINE)
        x0, y0, x1, y1 = oval
        w = max(1.0, 0.035 * (x1 - x0))
        inner = _mask(canvas, lambda d: d.ellipse((x0 + w, y0 + w, x1 - w, y1 - w), fill=255))
        _paint(rgb, inner, np.clip(BODY_FILL + jitter, 0, 255))
        marks_box = box
        period = detail * 0.2 * (oval[3] - oval[1])
        _paint(rgb, inner * _pattern(canvas, value, marks_box, period, rng), MARK)
    else:  # tail: a fan widening away from the body (right), notched; it fills ~60% of its box
        x0, y0, x1, y1 = box
        h, w = y1 - y0, x1 - x0
        fan = lambda d: d.polygon([(x0, y0 + 0.3 * h), (x1, y0), (x1 - 0.2 * w, (y0 + y1) / 2), (x1, y1),
                                   (x0, y1 - 0.3 * h)], fill=255)
        _paint(rgb, _mask(canvas, fan), np.clip(np.array(TAIL_COLOURS[value], np.float32) + jitter, 0, 255))


def _layout(spec: DomainSpec, cls: ClassDef, rng) -> dict:
    """Where everything goes: object and part boxes (float xyxy), the distinguishing part's scale."""
    canvas = spec.canvas
    ow = rng.uniform(*spec.width_range) * canvas
    oh = 0.40 * ow  # the body's height
    ox = rng.uniform(0, canvas - ow)
    oy = rng.uniform(0, canvas - oh)
    cy = oy + oh / 2
    side = 0.29 * ow  # head and tail squares
    boxes = {
        "head": [ox, cy - side / 2, ox + side, cy + side / 2],
        "body": [ox + 0.27 * ow, oy, ox + 0.73 * ow, oy + oh],
        "tail": [ox + ow - side, cy - side / 2, ox + ow, cy + side / 2],
    }
    scale = 1.0 - spec.fine * (1.0 - FINE_MIN_SCALE)
    small = cls.varies if spec.fine > 0 else None
    if small == "head":  # shrink towards the body, keep it attached
        s = side * scale
        boxes["head"] = [ox + side - s, cy - s / 2, ox + side, cy + s / 2]
    elif small == "tail":
        s = side * scale
        boxes["tail"] = [ox + ow - side, cy - s / 2, ox + ow - side + s, cy + s / 2]
    body_oval = list(boxes["body"])
    if small == "body":  # the pattern shrinks to a patch on a plain oval
        bx0, by0, bx1, by1 = body_oval
        pw, ph = (bx1 - bx0) * scale, (by1 - by0) * scale
        px = rng.uniform(bx0 + 0.5 * (bx1 - bx0 - pw) * 0.5, bx1 - pw - 0.5 * (bx1 - bx0 - pw) * 0.5)
        py = (by0 + by1) / 2 - ph / 2
        boxes["body"] = [px, py, px + pw, py + ph]
    return {"object": [ox, oy, ox + ow, oy + oh], "parts": boxes, "body_oval": body_oval,
            "small": small, "scale": scale}


def _background(spec: DomainSpec, rng) -> np.ndarray:
    canvas = spec.canvas
    grey = rng.uniform(88, 136)
    rgb = np.full((canvas, canvas, 3), grey, np.float32) + rng.uniform(-8, 8, size=3).astype(np.float32)
    if spec.colour > 0:  # a coloured, striped texture blended in
        yy, xx = np.mgrid[0:canvas, 0:canvas].astype(np.float32)
        pattern = np.zeros((canvas, canvas), np.float32)
        for _ in range(2):
            angle, freq, phase = rng.uniform(0, np.pi), rng.uniform(0.05, 0.3), rng.uniform(0, 2 * np.pi)
            pattern += np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy) + phase)
        pattern = (pattern - pattern.min()) / (np.ptp(pattern) + 1e-6)
        c1, c2 = rng.uniform(20, 235, size=(2, 3)).astype(np.float32)
        texture = pattern[..., None] * c1 + (1 - pattern[..., None]) * c2
        rgb = (1 - spec.colour) * rgb + spec.colour * texture
    if spec.sketch > 0:  # paper
        paper = np.full((canvas, canvas, 3), 236.0, np.float32) + rng.uniform(-6, 6, size=3).astype(np.float32)
        rgb = (1 - spec.sketch) * rgb + spec.sketch * paper
    return rgb


def _distractors(rgb, spec: DomainSpec, obj_box, rng) -> None:
    """Loose parts of random kinds and values, kept off the object."""
    canvas = spec.canvas
    n = int(round(CLUTTER_MAX * spec.clutter))
    ow = obj_box[2] - obj_box[0]
    for _ in range(n):
        part = PARTS[rng.integers(3)]
        value = VALUES[part][rng.integers(3)]
        side = rng.uniform(0.22, 0.32) * ow * (1.6 if part == "body" else 1.0)
        for _try in range(30):
            x0, y0 = rng.uniform(-0.2 * side, canvas - 0.8 * side, size=2)
            box = [x0, y0, x0 + side, y0 + side * (0.9 if part == "body" else 1.0)]
            if (box[2] < obj_box[0] - 2 or box[0] > obj_box[2] + 2 or box[3] < obj_box[1] - 2 or box[1] > obj_box[3] + 2):
                break
        _draw_part(rgb, canvas, part, value, box, rng)


def _hue_rotate(rgb: np.ndarray, shift: float) -> np.ndarray:
    """Rotate every pixel's hue by ``shift`` (fraction of the circle); values in [0, 255]."""
    img = Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), "RGB").convert("HSV")
    hsv = np.asarray(img).astype(np.int32)
    hsv[..., 0] = (hsv[..., 0] + int(round(shift * 256))) % 256
    return np.asarray(Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB"), np.float32)


def render_one(spec: DomainSpec, cls: ClassDef, rng) -> tuple[np.ndarray, list[int], list[list[int]]]:
    """One image (canvas, canvas, 3) uint8, its object box and its part boxes (int xyxy, PARTS order)."""
    canvas = spec.canvas
    lay = _layout(spec, cls, rng)
    rgb = _background(spec, rng)
    if spec.clutter > 0:
        _distractors(rgb, spec, lay["object"], rng)
    # draw order: tail, body, head (the head overlaps the body's left end, the body the tail's)
    detail = lay["scale"] if lay["small"] == "body" else 1.0
    _draw_part(rgb, canvas, "tail", cls.value("tail"), lay["parts"]["tail"], rng)
    _draw_part(rgb, canvas, "body", cls.value("body"), lay["parts"]["body"], rng, detail=detail,
               patch=(lay["body_oval"],))
    _draw_part(rgb, canvas, "head", cls.value("head"), lay["parts"]["head"], rng)
    if spec.occlude > 0 and lay["small"] is not None:  # a leaf over part of the distinguishing part
        x0, y0, x1, y1 = lay["parts"][lay["small"]]
        h = (y1 - y0) * spec.occlude
        top = rng.random() < 0.5
        leaf = (x0 - 2, y0 - 2, x1 + 2, y0 + h) if top else (x0 - 2, y1 - h, x1 + 2, y1 + 2)
        _paint(rgb, _mask(canvas, lambda d: d.rectangle(leaf, fill=255)), np.array([70, 110, 60], np.float32))
    if spec.sketch > 0:  # faded fills: blend the object towards paper, keep dark outlines, pencil noise
        grey = rgb.mean(-1, keepdims=True)
        rgb = (1 - 0.5 * spec.sketch) * rgb + 0.5 * spec.sketch * (0.6 * grey + 0.4 * 236.0)
        rgb += rng.normal(0, 22 * spec.sketch, size=rgb.shape[:2])[..., None]
    if spec.colour > 0:
        rgb = _hue_rotate(rgb, HUE_MAX * spec.colour)
        mean = rgb.mean((0, 1), keepdims=True)
        rgb = mean + (1 - 0.45 * spec.colour) * (rgb - mean)  # lost contrast
    rgb += rng.normal(0, 3.0, size=rgb.shape).astype(np.float32)  # sensor noise, every domain
    image = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    parts = [_clip_box(lay["parts"][p], canvas) for p in PARTS]
    return image, _clip_box(lay["object"], canvas), parts


def _stream(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


class PartsWorld(RenderedImages):
    """One split of one parts-world domain: PIL images, labels, object and part boxes, a fingerprint.

    ``n_per_class`` images of every class of the domain (``spec.classes``), class-balanced, in
    interleaved label order. Image ``i`` is rendered from its own generator seeded with
    (seed, split, domain name, i, WORLD_VERSION), so train and test are disjoint renders and any image
    can be re-rendered alone (``render(i)``).
    """

    SPLITS = {"train": 0, "test": 1}

    def __init__(self, spec: DomainSpec | str = "clean", split: str = "test", n_per_class: int = 50, seed: int = 0):
        if isinstance(spec, str):
            spec = domain_spec(spec)
        if not isinstance(n_per_class, int) or n_per_class < 1:
            raise ValueError(f"parts-world {spec.name!r}: n_per_class={n_per_class!r} must be a positive integer")
        if split not in self.SPLITS:
            raise ValueError(f"parts-world split must be 'train' or 'test', got {split!r}")
        self.spec, self.split, self.seed, self.n_per_class = spec, split, seed, n_per_class
        self.class_defs = spec.class_defs
        self.name = f"parts-{spec.name}"
        self.classnames = [c.name for c in self.class_defs]
        n = n_per_class * len(self.class_defs)
        labels = np.arange(n) % len(self.class_defs)
        arrays = self._stored(n) or self._render_all(labels)
        self.images = arrays["images"]
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.boxes = torch.from_numpy(arrays["boxes"])  # (N, 4) object box xyxy
        self.part_boxes = torch.from_numpy(arrays["part_boxes"])  # (N, P, 4), PARTS order

    def _render_all(self, labels: np.ndarray) -> dict[str, np.ndarray]:
        """Render every image (in index order) and store the split for later processes."""
        images, boxes, part_boxes = [], [], []
        for i in range(len(labels)):
            image, box, parts = self.render(i, int(labels[i]))
            images.append(image)
            boxes.append(box)
            part_boxes.append(parts)
        arrays = {"images": np.stack(images), "boxes": np.asarray(boxes, np.int64),
                  "part_boxes": np.asarray(part_boxes, np.int64)}
        store_renders(self.render_path(), "parts-world", arrays)
        return arrays

    def _stored(self, n: int) -> dict[str, np.ndarray] | None:
        """The split of ``n`` images as a previous process stored it, or None (absent, unreadable or of
        another shape: rendered again)."""
        canvas = self.spec.canvas
        return read_renders(self.render_path(), "parts-world",
                            {"images": (n, canvas, canvas, 3), "boxes": (n, 4), "part_boxes": (n, len(PARTS))})

    def render_path(self):
        """Where this split's renders are stored: ``<cache>/parts-renders/<fingerprint>.npz``."""
        return cache_dir() / "parts-renders" / f"{self.fingerprint}.npz"

    def render(self, i: int, label: int):
        rng = np.random.default_rng([self.seed, self.SPLITS[self.split], _stream(self.spec.name), i, WORLD_VERSION])
        return render_one(self.spec, self.class_defs[label], rng)

    def fingerprint_header(self) -> dict:
        """Everything that determines the images: spec, classes, split, size, seed, version, constants."""
        return {"spec": dataclasses.asdict(self.spec), "classes": [dataclasses.asdict(c) for c in self.class_defs],
                "split": self.split, "n_per_class": self.n_per_class, "seed": self.seed, "version": WORLD_VERSION,
                "constants": [CLEAN_WIDTH, SMALL_WIDTH, FINE_MIN_SCALE, CLUTTER_MAX, HUE_MAX]}
