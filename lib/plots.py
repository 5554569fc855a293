"""Figures (seaborn styling): functions take data and return a matplotlib Figure; saving is
``lib.figures.save_figure``'s job."""
from __future__ import annotations

import textwrap

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


def method_bars(scores: pd.DataFrame, title: str = ""):
    """Grouped bars: accuracy per dataset (x) and method (hue), error bars = std over crop seeds.

    ``scores``: long form with columns method, dataset, accuracy, std (``zero_shot.score_table``).
    """
    use_theme()
    data = scores.reset_index().dropna(subset=["accuracy"])
    datasets = list(dict.fromkeys(data["dataset"]))
    methods = list(dict.fromkeys(data["method"]))
    fig, ax = plt.subplots(figsize=(1.5 + 1.9 * len(datasets), 3.2))
    sns.barplot(data=data, x="dataset", y="accuracy", hue="method", order=datasets, hue_order=methods, ax=ax,
                errorbar=None)
    for container, method in zip(ax.containers, methods):
        rows = data.set_index(["method", "dataset"])
        for bar, ds in zip(container, datasets):
            if (method, ds) in rows.index and rows.loc[(method, ds), "std"] > 0:
                x = bar.get_x() + bar.get_width() / 2
                ax.errorbar(x, bar.get_height(), yerr=rows.loc[(method, ds), "std"], color="k", lw=1, capsize=2)
    ax.set_ylabel("accuracy (%)")
    ax.set_xlabel("")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def sensitivity_curves(curves: pd.DataFrame):
    """One panel per swept parameter (theta, alpha): accuracy mean +- std over crop seeds, hue = method."""
    use_theme()
    params = list(dict.fromkeys(curves["parameter"]))
    methods = sorted(curves["method"].dropna().unique())
    palette = dict(zip(methods, sns.color_palette(n_colors=len(methods))))  # one colour per method in every panel
    fig, axes = plt.subplots(1, len(params), figsize=(4 * len(params), 3), squeeze=False)
    for ax, param in zip(axes[0], params):
        data = curves[curves["parameter"] == param]
        sns.lineplot(data=data, x="value", y="accuracy", hue="method", palette=palette, errorbar="sd", marker="o", ax=ax)
        ax.set_xlabel(param)
        ax.set_ylabel("accuracy (%), mean ± std over seeds")
    fig.tight_layout()
    return fig


def time_ratios(times: pd.DataFrame):
    """Horizontal bars: seconds per image of each method as a ratio to CLIP."""
    use_theme()
    fig, ax = plt.subplots(figsize=(5, 0.4 * len(times) + 1))
    data = times.reset_index()
    sns.barplot(data=data, y="method", x="ratio to CLIP", ax=ax, color=sns.color_palette()[0])
    ax.axvline(1.0, color="k", lw=1)
    ax.set_xlabel("time per image / CLIP's (encoding included)")
    ax.set_ylabel("")
    fig.tight_layout()
    return fig


def transport_examples(dataset, examples: list[dict], sentences: list[list[str]], classnames, max_crops: int = 3):
    """For each image, one panel per top description: the crops the LaZSL plan sends most mass to it.

    Box line width and opacity follow each crop's share of the description's mass.
    """
    use_theme()
    n_desc = max(len(e["descriptions"]) for e in examples)
    fig, axes = plt.subplots(len(examples), n_desc, figsize=(2.6 * n_desc, 2.9 * len(examples)), squeeze=False)
    colours = sns.color_palette("deep", n_desc)
    for row, example in zip(axes, examples):
        image, _ = dataset[example["index"]]
        for k, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if k >= len(example["descriptions"]):
                ax.axis("off")
                continue
            ax.imshow(image, interpolation="nearest")
            mass = example["crop_mass"][k]
            share = mass / mass.sum()
            for i in share.argsort(descending=True)[:max_crops].tolist():
                x0, y0, x1, y1 = example["boxes"][i].tolist()
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                       lw=0.5 + 6 * float(share[i]), ec=colours[k]))
            text = sentences[example["predicted"]][example["descriptions"][k]]
            ax.set_title(_wrap(text, 30), fontsize=7)
        truth, pred = classnames[example["label"]], classnames[example["predicted"]]
        row[0].set_ylabel(f"true {truth}\npredicted {pred}", fontsize=8)
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)[:3])
