"""Figures (seaborn styling): functions take data and return a matplotlib Figure; saving is
``lib.report.outputs``'s job. ``use_theme`` is the one seaborn theme of every figure."""
from __future__ import annotations

import itertools
import textwrap

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.patches import Rectangle

THEME = {"style": "whitegrid", "context": "notebook", "font_scale": 0.9}


def use_theme() -> None:
    """The seaborn theme of every figure in the companion."""
    sns.set_theme(**THEME)


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
            if "std" in rows and (method, ds) in rows.index and rows.loc[(method, ds), "std"] > 0:
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


# --------------------------------------------------------------------------------------------------
# FAIR (notebooks 02 and 04)


def crop_weight_densities(samples: pd.DataFrame):
    """Figs. 6/7: density of each crop weight (long columns ``weights``, ``crop weight``), one hue per
    weighting, log x axis (uniform weight 1/N marked)."""
    use_theme()
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    sns.kdeplot(data=samples, x="crop weight", hue="weights", common_norm=False, fill=True, alpha=0.25,
                log_scale=True, ax=ax, warn_singular=False)
    n = samples.groupby("weights").size().iloc[0]
    ax.set_xlabel("crop weight (log scale)")
    ax.set_title(f"crop weights of {n} crops", fontsize=10)
    legend = ax.get_legend()
    if legend is not None:
        legend.set_title(None)
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=7)
    fig.tight_layout()
    return fig


def sweep_curves(sweep: pd.DataFrame, value: str = "accuracy", ylabel: str = "accuracy (%)"):
    """Fig. 10: ``value`` against N (at fixed k) and against k (at fixed N), side by side.
    ``sweep``: columns parameter ("N" or "k"), x, and ``value``."""
    use_theme()
    fig, axes = plt.subplots(1, 2, figsize=(7, 2.8), sharey=True)
    for ax, param in zip(axes, ["N", "k"]):
        part = sweep[sweep["parameter"] == param].sort_values("x")
        sns.lineplot(data=part, x="x", y=value, marker="o", ax=ax, errorbar=None)
        ax.set_xscale("log", base=2)
        ax.set_xticks(part["x"].unique(), [str(int(v)) for v in part["x"].unique()])
        ax.set_xlabel({"N": "crops sampled N (k fixed)", "k": "crops kept k (N fixed)"}[param])
        ax.set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def cost_bars(cost: pd.DataFrame, column: str = "seconds per image", title: str = ""):
    """Bars of one cost column per method (index), the ratio to the first row written on each bar."""
    use_theme()
    fig, ax = plt.subplots(figsize=(6, 0.6 + 0.45 * len(cost)))
    data = cost.reset_index(names="method")
    sns.barplot(data=data, y="method", x=column, ax=ax, color=sns.color_palette()[0])
    base = data[column].iloc[0]
    for bar, value in zip(ax.patches, data[column]):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value / base:.2f}x", va="center", fontsize=8)
    ax.set_ylabel("")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def per_class_bars(per_class: pd.DataFrame, title: str = ""):
    """Figs. 1/8: accuracy per class (x), zero-shot vs adapted (hue). Long: method, class, accuracy."""
    use_theme()
    classes = list(dict.fromkeys(per_class["class"]))
    fig, ax = plt.subplots(figsize=(1.5 + 0.55 * len(classes), 3))
    sns.barplot(data=per_class, x="class", y="accuracy", hue="method", order=classes, ax=ax, errorbar=None)
    ax.set_ylabel("accuracy (%)")
    ax.set_xlabel("")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def training_curves(history: pd.DataFrame, title: str = ""):
    """A run's log per step: the two losses (left) and the pseudo-labels' accuracy (right)."""
    use_theme()
    fig, axes = plt.subplots(1, 2, figsize=(8, 2.8))
    long = history.melt(id_vars="step", value_vars=["loss_st", "loss_reg"], var_name="loss", value_name="value")
    sns.lineplot(data=long, x="step", y="value", hue="loss", ax=axes[0])
    axes[0].set_ylabel("loss")
    sns.lineplot(data=history, x="step", y=100 * history["pl_accuracy"], ax=axes[1])
    axes[1].set_ylabel("pseudo-label accuracy (%)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def embedding_panels(panels: dict, classnames, title: str = ""):
    """Figs. 4/12: 2-D embeddings side by side. ``panels``: name -> (points (n, 2), labels (n,),
    anchors (C, 2)); dots coloured by true class, stars for the Class Description Anchors."""
    use_theme()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    palette = sns.color_palette("tab10" if len(classnames) <= 10 else "tab20", len(classnames))  # tab10 repeats past 10
    for ax, (name, (points, labels, anchors)) in zip(axes[0], panels.items()):
        names = [classnames[int(i)] for i in labels]
        sns.scatterplot(x=points[:, 0], y=points[:, 1], hue=names, hue_order=list(classnames), palette=palette,
                        s=8, alpha=0.6, linewidth=0, ax=ax, legend=ax is axes[0][-1])
        ax.scatter(anchors[:, 0], anchors[:, 1], marker="*", s=220, c=palette, edgecolors="k", linewidths=0.8)
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    legend = axes[0][-1].get_legend()
    if legend is not None:
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=7,
                        markerscale=2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def confusion_pair(matrices: dict, classnames, title: str = "", groups=None):
    """Fig. 5: row-normalised confusion matrices (%) side by side. ``matrices``: name -> (C, C) array;
    ``groups`` ((C,) group ids, siblings consecutive: the parts world) outlines each group's block."""
    use_theme()
    n = len(classnames)
    fig, axes = plt.subplots(1, len(matrices), figsize=(0.9 + 0.42 * n * len(matrices), 0.8 + 0.36 * n), squeeze=False)
    for ax, (name, matrix) in zip(axes[0], matrices.items()):
        sns.heatmap(matrix, annot=n <= 12, fmt=".0f", cmap="Blues", vmin=0, vmax=100, cbar=False, square=True,
                    xticklabels=classnames, yticklabels=classnames, annot_kws={"fontsize": 6}, ax=ax)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(name, fontsize=10)
        ax.tick_params(labelsize=7)
        for start, size in _runs(groups):
            ax.add_patch(Rectangle((start, start), size, size, fill=False, edgecolor="tab:orange", linewidth=1.5))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _runs(groups) -> list[tuple[int, int]]:
    """(start, length) of each run of equal consecutive ids in ``groups`` (none for None)."""
    sizes = [len(list(run)) for _, run in itertools.groupby(int(g) for g in (groups if groups is not None else []))]
    return [(sum(sizes[:i]), n) for i, n in enumerate(sizes)]


def fewshot_intervals(table: pd.DataFrame, title: str = ""):
    """CDFSL accuracy, mean +- 95% CI: one panel per target, methods on y, shots as hue.
    ``table``: long, columns method, dataset, shots, accuracy, ci95."""
    use_theme()
    targets = list(dict.fromkeys(table["dataset"]))
    methods = list(dict.fromkeys(table["method"]))
    shots = sorted(set(table["shots"]))
    palette = sns.color_palette("deep", len(shots))
    fig, axes = plt.subplots(1, len(targets), figsize=(3.6 * len(targets), 0.45 * len(methods) + 1.2),
                             squeeze=False, sharey=True)
    for ax, target in zip(axes[0], targets):
        part = table[table["dataset"] == target]
        for j, k in enumerate(shots):
            rows = part[part["shots"] == k].set_index("method").reindex(methods)
            y = [i + (j - (len(shots) - 1) / 2) * 0.25 for i in range(len(methods))]
            ax.errorbar(rows["accuracy"], y, xerr=rows["ci95"], fmt="o", ms=4, capsize=2, color=palette[j],
                        label=f"{k}-shot")
        ax.set_yticks(range(len(methods)), methods, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("accuracy (%)")
        ax.set_title(target, fontsize=10)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def attention_grid(images, maps: dict, names, boxes=None, title: str = ""):
    """Query images (columns) x (method, map) rows: each map upsampled over its image.

    ``maps``: method -> {"cls": (n, gh, gw), "text": (n, gh, gw)}; ``boxes`` (n, 4) in image pixels,
    outlined when given. A map covers the model's view, which is the whole image for square images.
    """
    use_theme()
    kinds = (("cls", "[CLS] attn"), ("text", "patch-text"))
    rows = 1 + len(maps) * len(kinds)
    n = len(images)
    fig, axes = plt.subplots(rows, n, figsize=(1.35 * n + 1.3, 1.3 * rows), squeeze=False)
    for col, image in enumerate(images):
        height, width = image.shape[:2]
        axes[0][col].imshow(image, interpolation="nearest")
        axes[0][col].set_title(names[col], fontsize=8)
        r = 1
        for method, by_kind in maps.items():
            for kind, label in kinds:
                ax = axes[r][col]
                ax.imshow(image, interpolation="nearest")
                ax.imshow(by_kind[kind][col].numpy(), cmap="magma", alpha=0.6, extent=(0, width, height, 0),
                          interpolation="nearest", vmin=0)
                if col == 0:
                    ax.set_ylabel(f"{_wrap(method, 16)}\n{label}", fontsize=7)
                r += 1
        for r in range(rows):
            ax = axes[r][col]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if boxes is not None:
                x0, y0, x1, y1 = boxes[col].tolist()
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=0.8, ec="#4cc9f0"))
    axes[0][0].set_ylabel("query", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def localisation_bars(scores: pd.DataFrame, title: str = ""):
    """Localisation score per method (x) for both maps (hue), over seeds (error bars: sd), with the
    uniform map's score as a dashed line. ``scores``: long, columns method, seed, map, score, chance."""
    use_theme()
    fig, ax = plt.subplots(figsize=(1.0 + 1.1 * scores["method"].nunique(), 3))
    sns.barplot(data=scores, x="method", y="score", hue="map", errorbar="sd", ax=ax)
    ax.axhline(scores["chance"].mean(), ls="--", color="0.4", lw=1, label="uniform map")
    ax.set_ylabel("attention mass in box")
    ax.set_xlabel("")
    ax.set_ylim(0, 1)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def loss_split_curves(split: pd.DataFrame, title: str = ""):
    """The CE split during fine-tuning: one panel per quantity (visual margin, cross-modal margin,
    CE), one line per method. ``split``: long, columns method, step, part, value."""
    use_theme()
    parts = list(dict.fromkeys(split["part"]))
    fig, axes = plt.subplots(1, len(parts), figsize=(3.4 * len(parts) + 1.5, 2.8), squeeze=False)
    for i, (ax, part) in enumerate(zip(axes[0], parts)):
        sns.lineplot(data=split[split["part"] == part], x="step", y="value", hue="method", ax=ax,
                     legend=i == len(parts) - 1)
        ax.set_title(part, fontsize=10)
        ax.set_ylabel("")
    sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
