"""Figures of the parts world (notebook 05): its domains with their part boxes, the crops each part
description receives in LaZSL's plan, and patch-text maps with the described part's box. Functions take
arrays and return a matplotlib Figure (``lib.report.plots``'s theme); saving is ``lib.report.outputs``'s."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from lib.report.plots import use_theme

PART_COLOURS = ("#e4572e", "#2e86ab", "#f4a259")  # head, body, tail (the order of parts_world.PARTS)


def _box(ax, box, colour, lw=1.2, ls="-", alpha=1.0):
    x0, y0, x1, y1 = [float(v) for v in box]
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=lw, ls=ls, ec=colour, alpha=alpha))


def _bare(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def _overlay(ax, image, heat, box, colour) -> None:
    """``image`` with a patch-grid map ``heat`` (gh, gw) drawn over it and ``box`` outlined."""
    size = image.shape[0]
    _bare(ax)
    ax.imshow(image, interpolation="nearest")
    ax.imshow(heat, cmap="magma", alpha=0.6, extent=(-0.5, size - 0.5, size - 0.5, -0.5), interpolation="nearest")
    _box(ax, box, colour, lw=1.8)


def _image_column(axes, images, titles) -> None:
    for ax, image, title in zip(axes, images, titles):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        _bare(ax)


def world_samples(rows: dict, parts: tuple[str, ...]):
    """One row per domain: ``rows[name] = (images, part_boxes, titles, distinguishing part indices)``;
    every part box outlined in its part's colour, the class's distinguishing part drawn thicker."""
    use_theme()
    per_row = max(len(r[0]) for r in rows.values())
    fig, axes = plt.subplots(len(rows), per_row, figsize=(1.45 * per_row, 1.6 * len(rows)), squeeze=False)
    for ax_row, (name, (images, boxes, titles, special)) in zip(axes, rows.items()):
        for i, ax in enumerate(ax_row):
            _bare(ax)
            if i >= len(images):
                ax.axis("off")
                continue
            ax.imshow(images[i], interpolation="nearest")
            for p, box in enumerate(boxes[i]):
                _box(ax, box, PART_COLOURS[p], lw=2.0 if p == special[i] else 0.8)
            ax.set_title(titles[i], fontsize=7)
        ax_row[0].set_ylabel(name, fontsize=9)
    handles = [Rectangle((0, 0), 1, 1, fill=False, ec=c, lw=1.5) for c in PART_COLOURS]
    fig.legend(handles, [f"{p} box" for p in parts], loc="lower center", ncol=len(parts), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def plan_crops(example: dict, top: int = 4):
    """LaZSL's plan for one image, one panel per description of its class: the ``top`` crops receiving
    most of that description's mass, outlined with opacity by their share, and the described part's box
    (dashed). The title gives the share of the description's mass on crops covering its part."""
    use_theme()
    plan = example["plan"]  # (N, P)
    n_desc = plan.shape[1]
    fig, axes = plt.subplots(1, n_desc, figsize=(3.0 * n_desc, 3.3), squeeze=False)
    for p, ax in enumerate(axes[0]):
        _bare(ax)
        ax.imshow(example["image"], interpolation="nearest")
        share = plan[:, p] / plan[:, p].sum()
        order = np.argsort(-share.numpy(), kind="stable")[:top]
        for n in order:
            _box(ax, example["boxes"][n], "#ffffff", lw=2.2, alpha=float(0.35 + 0.65 * share[n] / share[order[0]]))
        _box(ax, example["parts"][p], PART_COLOURS[p], lw=2.0, ls="--")
        on_part = float((share * example["covers"][:, p].float()).sum())
        sentence = example["descriptions"][p]
        ax.set_title(f"{sentence}\n{100 * on_part:.0f}% of its mass on crops covering the {['head', 'body', 'tail'][p]}",
                     fontsize=8)
    fig.tight_layout()
    return fig


def part_maps(result: dict, parts: tuple[str, ...], n_images: int = 4):
    """Patch-text maps (one row per image, one column per part description): the map over the patch
    grid drawn over the image, the described part's box outlined, its mass inside the box in the title."""
    use_theme()
    n = min(n_images, len(result["images"]))
    fig, axes = plt.subplots(n, len(parts) + 1, figsize=(2.1 * (len(parts) + 1), 2.2 * n), squeeze=False)
    _image_column(axes[:, 0], result["images"][:n], result["classes"][:n])
    for i in range(n):
        for p, part in enumerate(parts):
            ax = axes[i, p + 1]
            _overlay(ax, result["images"][i], result["maps"][i, p].numpy(), result["parts"][i, p], PART_COLOURS[p])
            ax.set_title(f"{part}: {100 * float(result['mass'][i, p]):.0f}% in box "
                         f"(uniform {100 * float(result['chance'][i, p]):.0f}%)", fontsize=7)
    fig.tight_layout()
    return fig


def method_maps(example: dict):
    """Rows: query images; columns: the image, then each method's map over the patch grid, the query's
    distinguishing-part box outlined (``parts_episodes.example_maps``)."""
    use_theme()
    methods = list(example["maps"])
    n = len(example["images"])
    fig, axes = plt.subplots(n, len(methods) + 1, figsize=(2.2 * (len(methods) + 1), 2.2 * n), squeeze=False)
    _image_column(axes[:, 0], example["images"], example["classes"])
    for i in range(n):
        for j, method in enumerate(methods):
            _overlay(axes[i, j + 1], example["images"][i], example["maps"][method][i].numpy(), example["boxes"][i], "#2ec4b6")
            if i == 0:
                axes[i, j + 1].set_title(method, fontsize=8)
    fig.tight_layout()
    return fig
