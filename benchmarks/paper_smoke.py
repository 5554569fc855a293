"""The paper profile end to end at a small size: every notebook, its own backbone, the official descriptors.

``run(out, data_root, sizes)`` writes a profile file that is ``lib/runtime/profiles/paper.yaml`` with
only its sizes changed (``SIZES``: a few images per class of the EuroSAT subset, a few crops, one
epoch, two episodes, the device) and the backbones' weights replaced by random ones saved as local
checkpoints (open_clip ``ViT-B-16`` and ``ViT-B-32``, the architectures the paper profile names:
timings and code paths do not depend on the values, and nothing downloads). It builds a data root
with the EuroSAT subset cut to ``per_class`` images per class and split (CoOp's split-file format,
the images linked, not copied) and the official descriptor files (``<data root>/descriptors``, linked),
then runs every notebook through papermill with ``profile=<that file>`` (``lib.jobs.tasks.run_notebook``:
a failing cell is named), outputs under ``out``. The same readers, profile keys and descriptor rules
run as in a GPU user's ``python -m lib.regenerate --profile paper``.

``tests/test_paper_profile.py`` runs it on the CPU (``SIZES["cpu"]``, a few minutes on 2 cores);
``python -m benchmarks --device cuda`` runs it on the GPU (``SIZES["cuda"]``) after the paper-scale
timings and reports it in ``BENCHMARKS-cuda.md``; alone: ``python -m benchmarks.paper_smoke --help``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lib.jobs.tasks import TaskResult, notebooks, run_notebook
from lib.runtime import profiles
from lib.runtime.locations import NOTEBOOKS_DIR, data_root as resolve_data_root

# (profile key, block) of each backbone the paper profile runs: the top level (notebook 01) and the blocks
BACKBONE_KEYS = (("", "model"), ("fair", "model"), ("cdfsl", "model"))


@dataclass(frozen=True)
class Sizes:
    """How small the run is: images per class and split of the EuroSAT subset, and the profile's size keys
    (dotted names, ``lib.runtime.profiles.apply``'s rule)."""

    per_class: dict = field(default_factory=lambda: {"train": 2, "val": 1, "test": 3})
    settings: dict = field(default_factory=dict)


SIZE_KEYS = {  # every key a smoke run may change: sizes, the device and the datasets (the subset's)
    "device", "batch_size", "templates", "datasets", "n_crops", "crop_seeds", "sweep_size", "timing_images",
    "fair.datasets", "fair.adapt_size", "fair.test_size", "fair.fairness_seeds", "fair.config.epochs",
    "fair.config.n_crops", "fair.config.top_k", "fair.config.batch_size", "fair.sweep", "fair.cost_images",
    "cdfsl.targets", "cdfsl.episodes", "cdfsl.shots", "cdfsl.ways", "cdfsl.queries", "cdfsl.config.steps",
    "cdfsl.clip_lora.config.steps_per_shot",
}
_COMMON = {"datasets": ["EuroSAT"], "fair.datasets": ["EuroSAT"], "cdfsl.targets": ["EuroSAT"], "crop_seeds": [0],
           "fair.fairness_seeds": [0], "fair.config.epochs": 1, "cdfsl.episodes": 2, "cdfsl.shots": [1],
           "cdfsl.config.steps": 1}
SIZES = {
    # 2 CPU cores: 20 test images, 2 crops, one template (of the 80: the text tower costs as much per
    # prompt as the image tower per view), 1-image timing, FAIR on 10 images with 2 crops in batches of 4
    # (Fig. 10's grid N in {2, 4}, k in {1, 2}; 2 images in the cost cells: the paper's grid reaches 32
    # crops and 64 images, minutes of a ViT-B/32 on 2 cores), 2-way 1-shot episodes with 1 query per class
    # (the pool holds 2 per class; 5-way: a CLIP-LoRA / D-Trap iteration trains ViT-B-16 on 5 views of 5
    # images, 28 s on 2 cores, and notebook 03 trains 8 such episodes); CLIP-LoRA / D-Trap one iteration per
    # shot (the three regimes of the schedule run in tests/unit/methods/test_dtrap.py, and the GPU size's
    # 10 iterations, 5-way, reach them all)
    "cpu": Sizes({"train": 2, "val": 1, "test": 2}, {
        **_COMMON, "device": "cpu", "batch_size": 32, "templates": "single", "n_crops": 2, "sweep_size": 2,
        "timing_images": 1, "fair.adapt_size": 10, "fair.test_size": 10, "fair.config.n_crops": 2,
        "fair.config.top_k": 1, "fair.config.batch_size": 4, "fair.sweep": {"n": [2, 4], "k": [1, 2]},
        "fair.cost_images": 2, "cdfsl.ways": 2, "cdfsl.queries": 1, "cdfsl.clip_lora.config.steps_per_shot": 1}),
    # a GPU, within the 10 minutes of `python -m benchmarks --device cuda`: the paper's crops and templates
    "cuda": Sizes({"train": 8, "val": 2, "test": 20}, {
        **_COMMON, "device": "cuda", "sweep_size": 50, "timing_images": 8, "fair.adapt_size": 80,
        "fair.test_size": 100, "cdfsl.queries": 15,
        "cdfsl.clip_lora.config.steps_per_shot": 10}),
}


def random_checkpoints(folder: Path, architectures) -> dict[str, Path]:
    """``{architecture: <folder>/<architecture>-random.pt}``: open_clip's seeded random init, saved once."""
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for arch in dict.fromkeys(architectures):
        path = folder / f"{arch}-random.pt"
        if not path.is_file():
            with torch.random.fork_rng():
                torch.manual_seed(0)
                model = open_clip.create_model(arch)
            tmp = path.with_name(f".{path.name}.tmp")
            torch.save(model.state_dict(), tmp)
            os.replace(tmp, path)
        paths[arch] = path
    return paths


def smoke_profile(sizes: Sizes, checkpoints: dict[str, Path]) -> dict:
    """The paper profile with ``sizes.settings`` applied and each backbone's weights a local checkpoint."""
    paper = profiles.load("paper")
    cfg = profiles.apply(paper, sizes.settings, "paper smoke size")
    for block, key in BACKBONE_KEYS:
        target = cfg[block] if block else cfg
        if key in target:
            target["pretrained"] = str(checkpoints[target[key]])
    return cfg


def changed_keys(a: dict, b: dict, prefix: str = "") -> set[str]:
    """Dotted names of the settings that differ between two profiles."""
    out = set()
    for key in set(a) | set(b):
        name = f"{prefix}{key}"
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            out |= changed_keys(a[key], b[key], name + ".")
        elif a.get(key) != b.get(key):
            out.add(name)
    return out


def eurosat_subset(source: Path, target: Path, per_class: dict) -> Path:
    """``target/eurosat`` with the first ``per_class[split]`` images of each class and split of the subset
    under ``source`` (its split file rewritten, its image folder linked)."""
    split = json.loads((source / "eurosat" / "split_zhou_EuroSAT.json").read_text())
    small = {}
    for name, rows in split.items():
        taken, small[name] = Counter(), []
        for row in rows:  # [relative path, label, class name]
            if taken[row[1]] < per_class[name]:
                small[name].append(row)
                taken[row[1]] += 1
    folder = target / "eurosat"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "split_zhou_EuroSAT.json").write_text(json.dumps(small))
    if not (folder / "2750").exists():
        (folder / "2750").symlink_to((source / "eurosat" / "2750").resolve())
    return target


def prepare(out: Path, source_root: Path, sizes: Sizes) -> tuple[Path, Path]:
    """(profile file, data root) of a smoke run under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    root = eurosat_subset(source_root, out / "data", sizes.per_class)
    if not (root / "descriptors").exists():
        (root / "descriptors").symlink_to((source_root / "descriptors").resolve())
    paper = profiles.load("paper")
    archs = [(paper[b] if b else paper)[k] for b, k in BACKBONE_KEYS if k in (paper[b] if b else paper)]
    cfg = smoke_profile(sizes, random_checkpoints(out / "checkpoints", archs))
    path = out / "paper-smoke.yaml"
    path.write_text("# lib/runtime/profiles/paper.yaml at smoke size (benchmarks.paper_smoke)\n"
                    + yaml.safe_dump(cfg, sort_keys=False))
    return path, root


@dataclass(frozen=True)
class SmokeResult:
    """One notebook's run: the main job's record of it (status, wall seconds, the failing cell) and the
    CPU seconds its kernel used (what a loaded machine's wall clock hides)."""

    task: TaskResult
    cpu_s: float

    def __getattr__(self, name):  # notebook, status, seconds, output, error
        return getattr(self.task, name)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(out: str | Path, data_root: str | Path | None = None, sizes: Sizes | str = "cpu",
        only: list[str] | None = None, budget_s: float | None = None) -> list[SmokeResult]:
    """Every notebook (``only``: name prefixes) on the paper profile at ``sizes``; a notebook not started
    within ``budget_s`` seconds of the start is recorded as skipped."""
    start = time.perf_counter()
    sizes = SIZES[sizes] if isinstance(sizes, str) else sizes
    source = resolve_data_root(data_root)
    if source is None or not (source / "eurosat" / "split_zhou_EuroSAT.json").is_file():
        raise FileNotFoundError(f"the paper smoke run needs the EuroSAT subset and the descriptor files under DATA_ROOT "
                                f"(<root>/eurosat/split_zhou_EuroSAT.json, <root>/descriptors/); got {source}")
    out = Path(out)
    profile, root = prepare(out, source, sizes)
    env = {"DATA_ROOT": str(root), "COMPANION_CACHE": str(out / "cache"), "COMPANION_FIGURES": str(out / "figures"),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    results = []
    for path in notebooks(only):
        if budget_s is not None and time.perf_counter() - start > budget_s:
            skipped = TaskResult(path.stem, "skipped", 0.0, "", f"not started: the {budget_s:.0f} s budget ran out")
            results.append(SmokeResult(skipped, 0.0))
            continue
        params = {"profile": str(profile), "data_root": str(root), "figures_root": str(out / "figures")}
        cpu = _children_cpu()  # the kernel is a child process, reaped when its notebook ends
        result = run_notebook(path, out / path.name, params, NOTEBOOKS_DIR, out / "failed", env)
        results.append(SmokeResult(result, _children_cpu() - cpu))
    return results


def markdown(results: list[TaskResult], sizes: Sizes | str) -> str:
    sizes = SIZES[sizes] if isinstance(sizes, str) else sizes
    lines = ["| notebook | status | wall s | kernel CPU s | error |", "|---|---|---|---|---|"]
    for r in results:
        cpu = getattr(r, "cpu_s", None)
        lines.append(f"| {r.notebook} | {r.status} | {r.seconds:.0f} | {'—' if cpu is None else f'{cpu:.0f}'} | "
                     f"{r.error.replace('|', '/')[:300]} |")
    changed = ", ".join(f"`{k}: {json.dumps(v)}`" for k, v in sizes.settings.items())
    return "\n".join(lines + ["", f"EuroSAT subset: {sizes.per_class} images per class; changed from paper.yaml: {changed}"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.paper_smoke", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for the profile file, data root, checkpoints and outputs")
    p.add_argument("--size", default="cpu", choices=sorted(SIZES))
    p.add_argument("--only", default="", help="notebook name prefixes, comma-separated (default: all)")
    args = p.parse_args(argv)
    results = run(args.out, sizes=args.size, only=[s for s in args.only.split(",") if s] or None)
    print(markdown(results, args.size))
    return 0 if all(r.status == "ok" for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
