"""Figures (seaborn styling): functions take data and return a matplotlib Figure; saving is
``lib.figures.save_figure``'s job."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.patches import Rectangle

from lib.figures import use_theme


def demo_examples(datasets: dict, per_domain: int = 8, show_boxes: bool = True):
    """A grid: one row per demo domain, ``per_domain`` images each, object boxes outlined."""
    use_theme()
    fig, axes = plt.subplots(len(datasets), per_domain, figsize=(1.2 * per_domain, 1.35 * len(datasets)), squeeze=False)
    for row, (name, ds) in zip(axes, datasets.items()):
        for i, ax in enumerate(row):
            image, label = ds[i]
            ax.imshow(image, interpolation="nearest")
            if show_boxes and hasattr(ds, "boxes"):
                x0, y0, x1, y1 = ds.boxes[i].tolist()
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=1, ec="#e4572e"))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(ds.classnames[label], fontsize=8)
            ax.grid(False)
        row[0].set_ylabel(name, fontsize=9)
    fig.tight_layout()
    return fig


def accuracy_bars(table: pd.DataFrame, column: str = "CLIP zero-shot"):
    """Bar chart of one accuracy column per dataset, with chance marked."""
    use_theme()
    fig, ax = plt.subplots(figsize=(5, 3))
    data = table.reset_index()
    sns.barplot(data=data, x="dataset", y=column, ax=ax, color=sns.color_palette()[0])
    if "chance" in data:
        for i, chance in enumerate(data["chance"]):
            ax.hlines(chance, i - 0.4, i + 0.4, colors="k", linestyles="--", lw=1)
    ax.set_ylabel(f"{column} accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_xlabel("")
    fig.tight_layout()
    return fig


def shift_curves(curves: pd.DataFrame, clean_accuracy: float | None = None, chance: float | None = None):
    """Accuracy against shift strength, one line per domain knob."""
    use_theme()
    fig, ax = plt.subplots(figsize=(5, 3))
    sns.lineplot(data=curves, x="strength", y="accuracy", hue="domain", marker="o", ax=ax)
    if clean_accuracy is not None:
        ax.axhline(clean_accuracy, color="k", lw=1, label="clean")
    if chance is not None:
        ax.axhline(chance, color="grey", lw=1, ls="--", label="chance")
    ax.set_xlabel("shift strength (knob value)")
    ax.set_ylabel("zero-shot accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
