"""Pseudo-labelling cost per batch: FAIR's (16 crops, top-4, LAS) against WCA's (60 crops, all kept).

FAIR's Fig. 2 (fair_paper.txt) claims its pseudo-labelling is cheaper than WCA's. Both sides are
``lib.fair.weak_pseudo_labels`` (crop boxes, ``roi_align`` crops of the weak view, one no-grad pass of
the weak view and its crops through the image encoder, scoring, gamma) on the same weak batch, with
the same encoder, differing only in their ``FairConfig``:

* FAIR: the default ``FairConfig()``: N = 16 crops, [CLS] crop weights (eq. 12), top-4 (eq. 13), LAS
  against the anchors Z* (eq. 14), gamma = S1 * |S1 - S2| (eq. 16);
* WCA: ``FairConfig(text="descriptions", crop_weights="softmax", top_k=None, n_crops=60,
  weight="none")``: WCA's crop count (60, the official code; DESIGN.md "What the official code
  does"), softmax crop weights (eq. 8), every crop kept, crops x descriptions (eq. 10, v_j = 1).

ratio = median(FAIR) / median(WCA), both timed ``repeats`` times, interleaved (the order alternates
every repeat), after ``warmup`` untimed calls of each; below 1 means FAIR is cheaper. The encoder
views per image (1 + N) are printed too: the encoder pass dominates both sides (crop boxes,
``roi_align`` and scoring are a small share), so the ratio sits near (1 + 16) / (1 + 60) = 0.28, or
below it where the encoder's time per view grows with the batch (on CPU, B x 61 views run slower per
view than B x 17).

Inputs: the weak views of one batch of demo-world images (``demo-colour``, train split) through
``lib.fair.loader`` (the model's own preprocessing), or random pixel tensors of the model's image
size (``--data random``). Text: random unit description features, C classes x M descriptions, all
real, through ``lib.fair.Text.from_descriptions``; the anchors are its initial Z* (the CuPL mean).
The default model is the demo model (``lib.pretrain`` builds it offline); ``--model ViT-B-32
--pretrained none`` times a random-weight ViT-B/32 (open_clip, ``pretrained=None``, offline).

    python -m benchmarks.fair_pseudo_labels [--model demo-tiny-vit --pretrained demo --batch 32
                                             --repeats 5 --device cpu --data demo --threads 1]
"""
from __future__ import annotations

import dataclasses
import statistics

import torch

from benchmarks import fair_step
from benchmarks.fair_step import _pretrained, _timed, one_batch, text_side
from lib import fair, models

FAIR = fair.FairConfig()
WCA = fair.FairConfig(text="descriptions", crop_weights="softmax", top_k=None, n_crops=60, weight="none")


def run(model: str = "demo-tiny-vit", pretrained: str | None = "demo", batch: int = 32, repeats: int = 5,
        device: str = "cpu", *, data: str = "demo", classes: int = 10, descriptions: int = 8,
        warmup: int = 1, seed: int = 0) -> dict:
    """Median seconds per batch of FAIR's and WCA's pseudo-labelling, their ratio and views per image."""
    configs = {"fair": dataclasses.replace(FAIR, batch_size=batch, seed=seed),
               "wca": dataclasses.replace(WCA, batch_size=batch, seed=seed)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        handle = models.load_model(model, _pretrained(pretrained), device)
    text = text_side(handle.model.visual.output_dim, classes, descriptions, seed).to(device)
    weak, _, indices, _ = one_batch(handle, configs["fair"], data, classes, seed)
    weak = weak.to(device)
    visual = handle.model.visual.eval()

    def pseudo_label(name):
        return lambda: fair.weak_pseudo_labels(visual, weak, indices, configs[name], text.initial, text, 0)

    for _ in range(warmup):
        pseudo_label("fair")(), pseudo_label("wca")()
    times = {"fair": [], "wca": []}
    for r in range(repeats):
        for name in (("fair", "wca") if r % 2 == 0 else ("wca", "fair")):
            times[name].append(_timed(pseudo_label(name), device))
    med = {k: statistics.median(v) for k, v in times.items()}
    views = {k: 1 + c.n_crops for k, c in configs.items()}
    return {
        "model": model, "pretrained": _pretrained(pretrained), "device": device, "batch": batch,
        "image_size": handle.image_size, "data": data, "classes": classes, "descriptions": descriptions,
        "repeats": repeats, "torch_threads": torch.get_num_threads(),
        "fair_s": med["fair"], "wca_s": med["wca"], "views_fair": views["fair"], "views_wca": views["wca"],
        "ratio": med["fair"] / med["wca"], "views_ratio": views["fair"] / views["wca"],
    }


def main(argv: list[str] | None = None) -> dict:
    r = fair_step.run_from_arguments(run, __doc__, argv, warmup=1)
    print(f"FAIR pseudo-labels (N=16, top-4, [CLS] weights, LAS): {r['fair_s'] * 1e3:9.1f} ms per batch, "
          f"{r['views_fair']} encoder views per image")
    print(f"WCA pseudo-labels (N=60, softmax weights, descr.):   {r['wca_s'] * 1e3:9.1f} ms per batch, "
          f"{r['views_wca']} encoder views per image")
    verdict = "cheaper" if r["ratio"] < 1 else "not cheaper"
    print(f"ratio FAIR / WCA: {r['ratio']:.3f} (FAIR {verdict}, as Fig. 2 claims it is); "
          f"views ratio {r['views_fair']}/{r['views_wca']} = {r['views_ratio']:.3f}")
    return r


if __name__ == "__main__":
    main()
