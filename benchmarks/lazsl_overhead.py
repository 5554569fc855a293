"""LaZSL's cost per image against the cost of encoding its views: is the transport negligible?

For one image: ``encode`` = one forward pass of the full image and its N crops (already cut and
preprocessed, so crop creation is on neither side) through the image encoder; ``score`` =
``lib.scoring.lazsl_logits`` on those features against C classes x M descriptions (random unit text
features, the official defaults theta = 0.8, eps = 0.1, at most 100 Sinkhorn iterations). LaZSL's time
per image is encode + score; the ratio (encode + score) / encode is the goal of the zero-shot issue
(<= 1.1 at N = 90, M = 50, C = 10 and C = 1000). Both parts are timed separately, interleaved, medians
of ``repeats`` runs after a warm-up: timing the sum end to end would bury a scoring time of a few
percent under the encoder's run-to-run noise on a shared CPU. Random weights are fine for
timing: ``pretrained=None`` builds the architecture offline.

    python -m benchmarks.lazsl_overhead [--model ViT-B-32 --crops 90 --descriptions 50 --classes 10 1000
                                         --repeats 5 --device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from lib import models, scoring


def _timed(fn, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def run(model: str = "ViT-B-32", n_crops: int = 90, descriptions: int = 50, classes=(10, 1000), repeats: int = 5,
        device: str = "cpu", seed: int = 0) -> list[dict]:
    """One row per class count: median seconds of encoding and of scoring, and (encode + score) / encode."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        handle = models.load_model(model, None, device)
        g = torch.Generator().manual_seed(seed)
        size = handle.image_size
        views = torch.randn(n_crops + 1, 3, size, size, generator=g).to(device)
    rows = []
    for c in classes:
        desc = F.normalize(torch.randn(c, descriptions, handle.model.visual.output_dim, generator=g), dim=-1).to(device)
        mask = torch.ones(c, descriptions, dtype=torch.bool, device=device)

        feats = models.encode_images(handle, views)

        def encode():
            return models.encode_images(handle, views)

        def score():
            return scoring.lazsl_logits(feats[None, 1:], feats[:1], desc, mask)

        encode(), score()  # warm-up
        t_encode, t_score = [], []
        for _ in range(repeats):
            t_encode.append(_timed(encode, device))
            t_score.append(_timed(score, device))
        enc, sco = statistics.median(t_encode), statistics.median(t_score)
        rows.append({"model": model, "device": device, "crops": n_crops, "descriptions": descriptions, "classes": c,
                     "encode_s": enc, "score_s": sco, "ratio": (enc + sco) / enc, "goal": 1.1})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--crops", type=int, default=90)
    parser.add_argument("--descriptions", type=int, default=50)
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    print(f"torch threads: {torch.get_num_threads()}")
    for row in run(args.model, args.crops, args.descriptions, args.classes, args.repeats, args.device):
        verdict = "meets" if row["ratio"] <= row["goal"] else "misses"
        print(f"{row['model']} on {row['device']}, N={row['crops']}, M={row['descriptions']}, C={row['classes']}: "
              f"encode {row['encode_s'] * 1e3:.1f} ms + OT scoring {row['score_s'] * 1e3:.1f} ms per image, "
              f"ratio {row['ratio']:.3f} ({verdict} the goal <= {row['goal']})")


if __name__ == "__main__":
    main()
