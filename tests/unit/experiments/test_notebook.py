"""lib.experiments.notebook: each notebook's paper's backbone, the datasets a setting names, and what a
new user with one dataset of their own meets (issue 16, item 7): a finished notebook with the reason
printed, or an error naming the setting at fault."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib.data.resolve import Subset
from lib.experiments import notebook, zero_shot
from lib.features import cache as feature_cache
from lib.report import reference
from lib.runtime import profiles
from lib.runtime.locations import REPO_ROOT


@pytest.mark.parametrize("nb,arch", [("01_zero_shot_tables", "ViT-B-16"), ("02_fair_ablations", "ViT-B-32"),
                                     ("03_cdfsl_attention_maps", "ViT-B-16"), ("04_tsne_confusion", "ViT-B-32")])
def test_each_notebook_runs_its_papers_backbone_in_the_paper_profile(nb, arch):
    cfg = notebook.backbone(profiles.load("paper"), notebook.BACKBONE_BLOCKS.get(nb), {})
    assert (cfg["model"], cfg["pretrained"]) == (arch, "openai")


def test_a_notebook_parameter_overrides_the_blocks_backbone():
    params = {"model": "ViT-L-14", "pretrained": ""}
    cfg = notebook.backbone(profiles.load("paper", **params), "fair", params)
    assert (cfg["model"], cfg["pretrained"]) == ("ViT-L-14", "openai")
    demo = notebook.backbone(profiles.load("demo"), "fair", {})  # no backbone in the demo blocks
    assert (demo["model"], demo["pretrained"]) == ("demo-tiny-vit", "demo")


def test_published_numbers_only_beside_the_same_backbone():
    assert reference.backbone("lazsl") == ("ViT-B-16", "openai") and reference.backbone("fair") == ("ViT-B-32", "openai")
    assert reference.mismatch("lazsl", "ViT-B-16", "openai") is None
    assert reference.mismatch("lazsl", "ViT-B-16-quickgelu", "openai") is None  # the same weights' other name
    assert "published numbers are for ViT-B-16 / openai; this run is ViT-B-32 / openai" in \
        reference.mismatch("lazsl", "ViT-B-32", "openai")
    assert reference.mismatch("fair", "ViT-B-32", "/ckpt/random.pt") is not None
    assert reference.label("fair") == "FAIR paper, ViT-B-32 / openai"


def test_no_dataset_opening_names_the_setting_data_root_and_layout():
    cfg = profiles.load("eurosat")
    with pytest.raises(notebook.NoDatasetError) as err:
        notebook.open_setting(cfg, "datasets", "/nonexistent")
    message = str(err.value)
    assert "none of the datasets of `datasets` (['eurosat']) opens (DATA_ROOT=/nonexistent)" in message
    assert "split_zhou_EuroSAT.json" in message and "set `datasets` to datasets you have" in message


def test_pick_stands_in_for_a_setting_the_users_data_lacks(capsys):
    cfg = profiles.load("paper")
    assert notebook.pick(cfg, "sweep_dataset", ["CUB", "EuroSAT"]) == "CUB"
    assert capsys.readouterr().out == ""
    assert notebook.pick(cfg, "sweep_dataset", ["EuroSAT"]) == "EuroSAT"
    assert "`sweep_dataset` is 'CUB', which is not among the datasets present (['EuroSAT']): using 'EuroSAT'" in \
        capsys.readouterr().out
    assert notebook.pick(cfg, "fair.focus", []) is None
    assert "`fair.focus` is 'Flowers102', and no dataset it could stand for is present" in capsys.readouterr().out
    with pytest.raises(KeyError, match="has no setting 'fair.nothing'"):
        notebook.pick(cfg, "fair.nothing", [])


def test_headline_keys_of_real_datasets_are_told_apart():
    assert notebook.is_real_dataset("EuroSAT") and notebook.is_real_dataset("eurosat")
    assert not notebook.is_real_dataset("demo-clutter") and not notebook.is_real_dataset("LaZSL")
    assert not notebook.is_real_dataset("5-shot")


def test_the_paper_profile_draws_no_demo_shift_curves(handle, tmp_path):
    """The paper profile shifts ImageNet's variants, not demo domains: no demo-world encoding at all."""
    cfg = profiles.load("paper", device="cpu")
    before = handle.encode_calls
    curves = zero_shot.shift_curves(handle, cfg, [0.0, 1.0], feature_cache.FeatureCache(tmp_path))
    assert curves.empty and handle.encode_calls == before
    assert zero_shot.shift_knobs(profiles.load("demo")["shift_datasets"]) == [("clutter", "clutter"), ("colour", "colour")]


def test_a_dataset_without_its_descriptor_file_runs_without_the_descriptor_methods(handle, tmp_path, eurosat_root):
    """The paper profile with `datasets: [EuroSAT]` and a data root without descriptors/: the descriptor
    methods are left out with the reason, the others are scored."""
    root = tmp_path / "data"
    root.mkdir()
    (root / "eurosat").symlink_to(eurosat_root / "eurosat")
    cfg = profiles.load("paper", device="cpu", datasets=["EuroSAT"], templates="single")
    opened, _ = notebook.open_setting(cfg, "datasets", root)
    small = Subset(opened["EuroSAT"], 20)
    inputs = zero_shot.gather_inputs(handle, small, cfg, feature_cache.FeatureCache(tmp_path / "cache"), data_root=root)
    assert inputs.desc is None and "descriptor file not found" in inputs.left_out
    assert "descriptors/dclip/descriptors_eurosat.json" in inputs.left_out and "LaZSL are left out" in inputs.left_out
    table = zero_shot.score_table({"EuroSAT": inputs}, list(zero_shot.ZERO_SHOT_METHODS), cfg)
    assert table.loc[("CLIP (single)", "EuroSAT"), "accuracy"] >= 0 and table["accuracy"].isna().sum() == 4
    notes = zero_shot.descriptor_notes({"EuroSAT": inputs})
    assert len(notes) == 1 and notes[0].startswith("EuroSAT: descriptor file not found")
    assert list(zero_shot.inference_cost(cfg, *zero_shot.text_sizes(inputs)).index) == ["CLIP (templates)", "CLIP (single)"]


def test_main_job_without_a_data_root_names_it_and_the_layout(tmp_path):
    """DATA_ROOT=/nonexistent python -m lib.regenerate --only 01 --profile eurosat: the summary names the
    cell, DATA_ROOT and the expected layout (before: cell 9, IndexError: list index out of range)."""
    env = {**os.environ, "DATA_ROOT": "/nonexistent", "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-m", "lib.regenerate", "--only", "01", "--profile", "eurosat",
                           "--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs"), "--workers", "1"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "NoDatasetError" in out and "DATA_ROOT=/nonexistent" in out and "split_zhou_EuroSAT.json" in out, out
    assert "IndexError" not in out
    record = json.loads((tmp_path / "runs" / "main_job.json").read_text())
    assert [t["status"] for t in record["tasks"]] == ["failed"]
    assert not Path(tmp_path / "out" / "figures" / "01_zero_shot_tables" / "headline.json").exists()
