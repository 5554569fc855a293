"""Items 2, 3 and 5 of issue 8 at paper scale on a GPU, with absolute per-sample times beside the papers'.

Issue 8, item 8: ``python -m benchmarks --device cuda`` runs, where ``torch.cuda.is_available()``:

* item 2 (``lazsl_overhead``): ViT-B/32, N = 90 crops, M = 50 descriptions, C = 10 and 1000;
* item 3 (``zero_shot_methods``): ViT-B/32, N = 90, M = 50, C = 1000, one image per call (the official
  LaZSL code's batch size). The LaZSL paper does not say on which dataset it timed; C = 1000
  (ImageNet, the largest of its datasets) is the costliest case for the transport;
* item 5 (``fair_pseudo_labels``, ``fair_step``): ViT-B/32 at 224 px, batch 32, N = 16 / top-4 against
  WCA's 60 crops, C = 10 classes (EuroSAT, the dataset of FAIR's Fig. 2), M = 50 descriptions (CuPL).

Random weights (open_clip ``pretrained=None``): timing does not depend on the values. Compared with:
the LaZSL paper's 0.07 s (LaZSL) and 0.015 s (DCLIP) per sample on a GPU (lazsl_paper-excerpt.txt,
"Key Findings"); FAIR plots time and GPU memory (Figs. 2 and 10, an A100-SXM4-40GB, Sec. 6.1) but its
text gives no number, so its column says so. Where no GPU is present the runner says so and skips.
"""
from __future__ import annotations

import torch

from benchmarks import fair_pseudo_labels, fair_step, lazsl_overhead, zero_shot_methods
from benchmarks.report import Row, _cell, fmt, seconds

PAPER = {"LaZSL": (0.07, "LaZSL paper (0.07 s per sample, GPU)"),
         "DCLIP": (0.015, "LaZSL paper (0.015 s per sample, GPU)")}
FAIR_PAPER = "FAIR paper: Figs. 2 and 10 plot it, no number in the text (A100)"
PAPER_SCALE = {"model": "ViT-B-32", "crops": 90, "descriptions": 50, "lazsl_classes": (10, 1000),
               "method_classes": 1000, "batch": 32, "fair_classes": 10, "fair_descriptions": 50}
QUICK_SCALE = {"model": "demo-tiny-vit", "crops": 6, "descriptions": 4, "lazsl_classes": (3,),
               "method_classes": 3, "batch": 4, "fair_classes": 3, "fair_descriptions": 4}


def available(device: str) -> bool:
    """True when ``device`` can run here (a CUDA device needs ``torch.cuda.is_available()``)."""
    return torch.device(device).type != "cuda" or torch.cuda.is_available()


def run(device: str = "cuda", repeats: int = 5, quick: bool = False, progress=None) -> dict:
    """Every measurement at paper scale (``quick``: a tiny smoke scale, for tests on a CPU);
    ``progress(name)`` is called as each item finishes."""
    s = QUICK_SCALE if quick else PAPER_SCALE
    done = progress or (lambda name: None)
    out = {"device": device, "scale": s, "repeats": repeats}
    out["lazsl"] = lazsl_overhead.run(s["model"], s["crops"], s["descriptions"], s["lazsl_classes"], repeats, device)
    done("2 LaZSL overhead")
    out["methods"] = zero_shot_methods.run(s["model"], None, s["crops"], s["descriptions"], s["method_classes"],
                                           1, repeats, device)
    done("3 zero-shot methods")
    fair_sizes = {"classes": s["fair_classes"], "descriptions": s["fair_descriptions"]}
    out["pseudo"] = fair_pseudo_labels.run(s["model"], None, s["batch"], repeats, device, **fair_sizes)
    done("5a FAIR pseudo-labels")
    out["step"] = fair_step.run(s["model"], None, s["batch"], repeats, device, **fair_sizes)
    done("5b FAIR step")
    return out


def rows(r: dict) -> list[Row]:
    """The ratio rows of items 2, 3 and 5, numbered 8.<item>."""
    return [*lazsl_overhead.rows(r["lazsl"], "8.2"), *zero_shot_methods.rows(r["methods"], "8.3"),
            *fair_pseudo_labels.rows(r["pseudo"], "8.5a"), *fair_step.rows(r["step"], "8.5b")]


def absolute(r: dict) -> list[dict]:
    """Absolute seconds per sample (image) beside the papers' numbers."""
    out = []
    for name, m in r["methods"]["methods"].items():
        paper = PAPER.get(name)
        out.append({"what": f"{name}, inference per image (encoder + scoring, C={r['methods']['classes']})",
                    "ours_s": m["total_s"], "paper_s": paper[0] if paper else None,
                    "paper": paper[1] if paper else "not reported"})
    for row in r["lazsl"]:
        out.append({"what": f"LaZSL OT scoring per image, C={row['classes']}", "ours_s": row["score_s"],
                    "paper_s": None, "paper": "not reported"})
    p, st = r["pseudo"], r["step"]
    out += [{"what": "FAIR pseudo-labelling per image (16 crops)", "ours_s": p["fair_s"] / p["batch"],
             "paper_s": None, "paper": FAIR_PAPER},
            {"what": "WCA pseudo-labelling per image (60 crops)", "ours_s": p["wca_s"] / p["batch"],
             "paper_s": None, "paper": FAIR_PAPER},
            {"what": f"FAIR training step per image (batch {st['batch']})", "ours_s": st["fair_step_s"] / st["batch"],
             "paper_s": None, "paper": FAIR_PAPER},
            {"what": f"plain LayerNorm-tuning step per image (batch {st['batch']})",
             "ours_s": st["plain_step_s"] / st["batch"], "paper_s": None, "paper": "—"}]
    return out


def absolute_table(items: list[dict]) -> str:
    lines = ["| per sample | ours | paper | source |", "|---|---|---|---|"]
    for a in items:
        paper = seconds(a["paper_s"]) if a["paper_s"] is not None else "—"
        lines.append(f"| {_cell(a['what'])} | {seconds(a['ours_s'])} | {paper} | {_cell(a['paper'])} |")
    return "\n".join(lines)


def print_absolute(items: list[dict]) -> None:
    for a in items:
        paper = f"paper {fmt(a['paper_s'])} s" if a["paper_s"] is not None else a["paper"]
        print(f"  {a['what']:<70} ours {fmt(a['ours_s'])} s   {paper}")
