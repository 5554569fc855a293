"""Per-image time of every zero-shot method of notebook 01, as a ratio to CLIP's.

Issue 8, item 3. No goal: the number to compare with is the LaZSL paper's (lazsl_paper-excerpt.txt,
"Key Findings" and "Limitations"): 0.07 s per sample for LaZSL against 0.015 s for DCLIP, about 4.7x,
on a GPU.

Each method is one row of ``lib.experiments.zero_shot.ZERO_SHOT_METHODS`` (the notebook's scoring calls, unchanged), and its
time per image = the encoder pass over the views it needs (``lib.experiments.zero_shot.inference_cost``: 1 view
for CLIP, CuPL and DCLIP; the full image and its N crops for WCA and LaZSL) + its scoring call on
those features. The two encoder passes (1 view, 1 + N views) and every method's scoring call are timed
separately, interleaved (the order reversed every other repeat), medians of ``repeats`` after a
warm-up; methods needing the same views share the encoder timing (they compute exactly the same
pass). Views arrive cut and preprocessed (crop cutting is on no side); text features are computed once
per class, not per image, and are left out, as in ``inference_cost``. Text: random unit features,
C classes x M descriptions. Random weights are fine for timing.

    python -m benchmarks.zero_shot_methods [--model ViT-B-32 --crops 90 --descriptions 50 --classes 10
                                            --images 1 --repeats 5 --device cpu --threads 1]
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from benchmarks import timing
from benchmarks.report import Row, fmt, seconds
from lib import models
from lib.experiments import zero_shot

BASELINE = "CLIP (templates)"
# LaZSL paper, on a GPU: seconds per sample (lazsl_paper-excerpt.txt, "Key Findings")
PAPER_SECONDS = {"LaZSL": 0.07, "DCLIP": 0.015}
PAPER_SOURCE = "LaZSL paper (lazsl_paper-excerpt.txt): 0.07 s LaZSL vs 0.015 s DCLIP per sample, GPU"


def run(model: str = "ViT-B-32", pretrained: str | None = None, n_crops: int = 90, descriptions: int = 50,
        classes: int = 10, images: int = 1, repeats: int = 5, device: str = "cpu", seed: int = 0) -> dict:
    """Seconds per image of each method (encoder + scoring), and the ratio of each to CLIP's."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        handle = models.load_model(model, timing.pretrained_tag(pretrained), device)
    g = torch.Generator().manual_seed(seed)
    size, dim = handle.image_size, handle.model.visual.output_dim
    views = torch.randn(images, n_crops + 1, 3, size, size, generator=g).to(device)
    flat, full = views.flatten(0, 1), views[:, 0].contiguous()
    unit = lambda *shape: F.normalize(torch.randn(*shape, generator=g), dim=-1).to(device)  # noqa: E731
    inputs = zero_shot.Inputs(labels=torch.zeros(images, dtype=torch.long), img=None, txt=unit(classes, dim),
                              single=unit(classes, dim), desc=unit(classes, descriptions, dim),
                              mask=torch.ones(classes, descriptions, dtype=torch.bool, device=device))
    feats = models.encode_images(handle, flat).reshape(images, n_crops + 1, -1)
    inputs.img = feats[:, 0]
    crops = {"global": feats[:, 0], "crops": feats[:, 1:]}
    cfg = {"n_crops": n_crops, "theta": 0.8, "eps": 0.1}  # LaZSL's official theta and eps
    cost = zero_shot.inference_cost(cfg, classes, descriptions)

    encoders = {1: "encode 1 view", n_crops + 1: f"encode {n_crops + 1} views"}
    sides = {encoders[1]: lambda: models.encode_images(handle, full),
             encoders[n_crops + 1]: lambda: models.encode_images(handle, flat)}
    for name, (_, needs_crops, score) in zero_shot.ZERO_SHOT_METHODS.items():
        sides[f"score {name}"] = (lambda score=score, c=(crops if needs_crops else None): score(inputs, c, cfg))
    med = timing.medians(timing.interleaved(sides, repeats, device, warmup=1))

    methods = {}
    for name in zero_shot.ZERO_SHOT_METHODS:
        n_views = int(cost.loc[name, "encoder views"])
        encode, score = med[encoders[n_views]] / images, med[f"score {name}"] / images
        methods[name] = {"views": n_views, "encode_s": encode, "score_s": score, "total_s": encode + score,
                         "similarities": int(cost.loc[name, "image-text similarities"]),
                         "ot_problems": int(cost.loc[name, "OT problems"])}
    base = methods[BASELINE]["total_s"]
    for m in methods.values():
        m["ratio"] = m["total_s"] / base
    return {"model": model, "pretrained": timing.pretrained_tag(pretrained), "device": device, "crops": n_crops,
            "descriptions": descriptions, "classes": classes, "images": images, "repeats": repeats,
            "torch_threads": torch.get_num_threads(), "baseline": BASELINE, "methods": methods,
            "lazsl_over_dclip": methods["LaZSL"]["total_s"] / methods["DCLIP"]["total_s"],
            "paper_lazsl_over_dclip": PAPER_SECONDS["LaZSL"] / PAPER_SECONDS["DCLIP"]}


def rows(r: dict, item: str = "3") -> list[Row]:
    """One row per method (its time per image / CLIP's), plus LaZSL / DCLIP beside the paper's ratio."""
    out = []
    weights = "random weights" if r["pretrained"] is None else r["pretrained"]
    for i, (name, m) in enumerate((n, m) for n, m in r["methods"].items() if n != r["baseline"]):
        share = m["encode_s"] / m["total_s"]
        notes = (f"{m['views']} encoder view(s) per image, {m['similarities']:,} image-text similarities"
                 + (f", {m['ot_problems']} OT problems" if m["ot_problems"] else "")
                 + f"; the encoder is {share:.0%} of its time")
        out.append(Row(f"{item}{'abcdefgh'[i]}", f"{name} / {r['baseline']}, time per image", m["ratio"], None,
                       notes, goal_text="none",
                       sides=[(f"{name}: encode + score per image", m["total_s"])]))
    lazsl, dclip = r["methods"]["LaZSL"], r["methods"]["DCLIP"]
    notes = (f"{r['model']} ({weights}) on {r['device']}, N={r['crops']}, M={r['descriptions']}, C={r['classes']}, "
             f"{r['images']} image(s) per call: LaZSL {seconds(lazsl['total_s'])} vs DCLIP {seconds(dclip['total_s'])} "
             f"per image (paper, GPU: 0.07 s vs 0.015 s). The encoder's {lazsl['views']} views dominate LaZSL "
             f"({lazsl['encode_s'] / lazsl['total_s']:.0%} of its time)")
    out.append(Row(f"{item}{'abcdefgh'[len(out)]}", "LaZSL / DCLIP, time per image", r["lazsl_over_dclip"], None,
                   notes, goal_text=f"none (paper: {fmt(r['paper_lazsl_over_dclip'])}x on a GPU)",
                   sides=[(f"{r['baseline']}: encode + score per image", r["methods"][r["baseline"]]["total_s"])]))
    return out


def figure(r: dict):
    """Each method's time per image (log axis), labelled with its ratio to CLIP and its encoder share."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from lib.report.plots import use_theme

    use_theme()
    names = list(r["methods"])
    total = [r["methods"][n]["total_s"] for n in names]
    fig, ax = plt.subplots(figsize=(6.5, 3))
    sns.barplot(x=total, y=names, ax=ax, color=sns.color_palette()[0], orient="h")
    ax.set_xscale("log")
    ax.set_xlim(min(total) / 3, max(total) * 8)
    for y, n in enumerate(names):
        m = r["methods"][n]
        ax.text(m["total_s"], y, f" {seconds(m['total_s'])}, {fmt(m['ratio'])}x CLIP, {m['views']} view(s), "
                                 f"encoder {m['encode_s'] / m['total_s']:.0%}", va="center", fontsize=7)
    ax.set_xlabel("seconds per image, encoder + scoring (log scale)")
    ax.set_title(f"{r['model']} on {r['device']}: N={r['crops']}, M={r['descriptions']}, C={r['classes']}", fontsize=9)
    fig.tight_layout()
    return fig


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="ViT-B-32")
    p.add_argument("--pretrained", default="none", help="open_clip tag, checkpoint, 'demo' or 'none' (random)")
    p.add_argument("--crops", type=int, default=90)
    p.add_argument("--descriptions", type=int, default=50)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--images", type=int, default=1, help="images per call (LaZSL's official code: 1)")
    args = timing.parse(timing.add_common_arguments(p, device=True), argv)
    r = run(args.model, args.pretrained, args.crops, args.descriptions, args.classes, args.images, args.repeats,
            args.device)
    print(f"{r['model']} on {r['device']} ({r['torch_threads']} torch threads), N={r['crops']}, M={r['descriptions']}, "
          f"C={r['classes']}, {r['images']} image(s) per call, medians of {r['repeats']} interleaved repeats")
    for name, m in r["methods"].items():
        paper = f"  (paper, GPU: {PAPER_SECONDS[name]} s)" if name in PAPER_SECONDS else ""
        print(f"{name:<18} {m['views']:>3} views: {m['total_s'] * 1e3:10.2f} ms per image "
              f"({fmt(m['ratio'])}x {r['baseline']}){paper}")
    print(f"LaZSL / DCLIP: {fmt(r['lazsl_over_dclip'])}x (paper: {fmt(r['paper_lazsl_over_dclip'])}x on a GPU)")
    return r


if __name__ == "__main__":
    main()
