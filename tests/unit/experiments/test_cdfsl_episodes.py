"""lib.experiments.cdfsl_episodes and cdfsl_tables: method rows, profile resolution, label names, tables' shapes
(no training here)."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from lib.experiments import cdfsl_episodes as ce
from lib.experiments import cdfsl_tables as ct
from lib.methods import finetune
from lib.runtime import profiles


@pytest.fixture(scope="module")
def demo_cfg():
    return profiles.load("demo")


def test_every_method_has_its_own_cache_key(demo_cfg):
    keys = {m: repr(sorted(ce.config(demo_cfg, m).settings().items())) for m in ce.CDFSL_METHODS}
    assert len(set(keys.values())) == len(keys)


def test_table_rows_are_known_methods():
    for rows in (ce.MAIN, ce.ABLATION, ce.DTRAP_ROWS, ce.CHECKPOINT_ROWS):
        assert set(rows) <= set(ce.CDFSL_METHODS)
    assert ce.PROMPT_ZERO_SHOT in ce.MAIN
    assert not any("D-Trap" in m for m in ce.ABLATION + ce.MAIN)  # the abstract-derived rows are named ours
    assert all("(ours)" in m for m in ce.CDFSL_METHODS if ce.CDFSL_METHODS[m].get("ours_perturb"))


def test_methods_build_on_the_profiles_base(demo_cfg):
    paper = profiles.load("paper")
    assert ce.config(demo_cfg, "CC-CDFSL").tuning == demo_cfg["cdfsl"]["base"] == "ln"
    assert ce.config(paper, "CC-CDFSL").tuning == "lora"
    assert ce.config(paper, "D-Trap").tuning == "clip-lora"
    assert ce.base_name(demo_cfg) == "LayerNorm" and ce.base_name(paper) == "LoRA"
    assert ce.map_methods(demo_cfg)[1] == "LayerNorm"


def test_switches_and_learning_rates(demo_cfg):
    cc = ce.config(demo_cfg, "CC-CDFSL")
    assert cc.cycle and cc.anchor_augment and cc.anchor_shrink and not cc.perturb
    trap = ce.config(demo_cfg, "CLIP-LoRA + perturbation")
    assert trap.perturb and not trap.align and not trap.cycle and not trap.ours_perturb
    ours = ce.config(demo_cfg, "Abstract-derived remedy (ours)")
    assert ours.ours_perturb and ours.ours_align and not ours.perturb and not ours.align and ours.tuning == "ln"
    assert ce.config(demo_cfg, ce.PROMPT_ZERO_SHOT).steps == 0
    assert ce.config(demo_cfg, "CoOp (prompt context)").learning_rate == demo_cfg["cdfsl"]["lr_by_tuning"]["coop"]
    assert ce.config(demo_cfg, "LayerNorm").learning_rate == finetune.LEARNING_RATES["ln"]
    assert ce.config(demo_cfg, "LayerNorm", seed=3).seed == 3
    assert ce.config(profiles.load("paper"), "LoRA").learning_rate == 2e-4


def test_unknown_method_and_missing_block_are_named(demo_cfg):
    with pytest.raises(KeyError, match="no such"):
        ce.config(demo_cfg, "no such")
    with pytest.raises(KeyError, match="no such"):
        ce.EpisodeJob("demo-colour", "no such", 1)
    cfg = {k: v for k, v in demo_cfg.items() if k != "cdfsl"}
    with pytest.raises(KeyError, match="cdfsl"):
        ce.EXPERIMENT.block(cfg)
    bad = {**demo_cfg, "cdfsl": {**demo_cfg["cdfsl"], "base": "prompts"}}
    with pytest.raises(ValueError, match="base='prompts'"):
        ce.base_name(bad)
    typo = {**demo_cfg, "cdfsl": {**demo_cfg["cdfsl"], "config": {"step": 3}}}
    with pytest.raises(ValueError, match="step"):
        ce.config(typo, "LayerNorm")


def test_episodes_follow_the_profile(demo_cfg):
    pool = ce.pool(demo_cfg, "demo-colour")
    episodes = ce.episodes(demo_cfg, pool, 5)
    opts = demo_cfg["cdfsl"]
    assert len(episodes) == opts["episodes"]
    assert all(e.n_way == opts["ways"] and len(e.query) == opts["ways"] * opts["queries"] for e in episodes)
    assert ce.pool(demo_cfg, "demo-colour") is pool  # opened once per process


def test_missing_target_is_named(demo_cfg, monkeypatch, tmp_path):
    monkeypatch.setenv("DATA_ROOT", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="ISIC"):
        ce.pool(demo_cfg, "ISIC")


def test_table_jobs_cover_targets_shots_methods(demo_cfg):
    jobs = ce.table_jobs(demo_cfg, ["demo-colour", "demo-clutter"])
    assert len(jobs) == 2 * len(demo_cfg["cdfsl"]["shots"]) * len(ce.MAIN) == len(set(jobs))


def test_the_clip_lora_rows_have_the_d_trap_codes_set_up(demo_cfg):
    paper = profiles.load("paper")
    for method in ce.DTRAP_ROWS:
        conf = ce.config(paper, method, target="EuroSAT")
        assert (conf.tuning, conf.five_views, conf.steps_per_shot, conf.learning_rate, conf.weight_decay,
                conf.cosine_tmax, conf.eta_min, conf.tau, conf.checkpoints) == \
            ("clip-lora", True, 250, 2e-4, 1e-2, 8, 1e-6, 0.01, 5), method
        assert (conf.perturb_weight, conf.align_weight, conf.fuse_fraction, conf.stop_fifths) == (0.1, 3.0, 0.6, 3)
        assert ce.uses_single_text(method)
    switches = {m: (ce.config(paper, m).perturb, ce.config(paper, m).align) for m in ce.DTRAP_ROWS}
    assert switches == {"CLIP-LoRA": (False, False), "CLIP-LoRA + perturbation": (True, False),
                        "CLIP-LoRA + alignment": (False, True), "D-Trap": (True, True)}
    assert ce.config(paper, "D-Trap", target="ChestX").steps_per_shot == 125  # main.py halves ChestX
    demo = ce.config(demo_cfg, "D-Trap", target="demo-colour")
    assert demo.steps_per_shot == demo_cfg["cdfsl"]["clip_lora"]["config"]["steps_per_shot"] < 250
    assert not ce.uses_single_text("LayerNorm") and not ce.uses_single_text("CC-CDFSL")


class _Named:
    def __init__(self, name, classnames):
        self.name, self.classnames = name, classnames


def test_label_names_come_from_the_file_beside_the_profiles(tmp_path):
    paper = profiles.load("paper")
    isic = _Named("ISIC", ["melanoma", "melanocytic nevus", "basal cell carcinoma", "actinic keratosis",
                           "benign keratosis", "dermatofibroma", "vascular lesion"])
    assert ce.label_names(paper, isic) == ["Melanoma", "Melanocytic Nevus", "Basal Cell Carcinoma",
                                           "Actinic Keratosis", "Benign Keratosis", "Dermatofibroma", "Vascular Lesion"]
    chest = _Named("ChestX", ["atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule",
                              "pneumothorax"])
    assert ce.label_names(paper, chest)[:2] == ["Atelectasis", "Cardiomegaly"]
    crop = _Named("CropDisease", ["Apple Apple scab", "Corn (maize) Common rust"])  # lib.data's folder-derived names
    assert ce.label_names(paper, crop) == ["Apple___Apple_scab", "Corn_(maize)___Common_rust_"]
    assert ce.label_names(paper, _Named("DTD", ["banded"])) == ["banded"]  # not listed: its class names
    assert ce.label_names(profiles.load("demo"), isic) == isic.classnames  # the demo profile names no file
    with pytest.raises(ValueError, match=r"ISIC.*'no such lesion'"):
        ce.label_names(paper, _Named("ISIC", ["melanoma", "no such lesion"]))
    bad = {**paper, "cdfsl": {**paper["cdfsl"], "clip_lora": {"label_names": str(tmp_path / "missing.yaml")}}}
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        ce.label_names(bad, isic)


def test_dtrap_jobs_cover_the_checkpoint_rows_and_the_remedy_rows(demo_cfg):
    paper = profiles.load("paper")
    jobs = ce.dtrap_jobs(paper, ["EuroSAT", "ISIC"])
    assert {(j.target, j.method, j.shots) for j in jobs} == (
        {(t, m, k) for t in ("EuroSAT", "ISIC") for m in ce.CHECKPOINT_ROWS for k in (1, 5)}
        | {("EuroSAT", m, 5) for m in ce.DTRAP_ROWS})
    demo = ce.dtrap_jobs(demo_cfg, ["demo-colour", "demo-clutter"])
    assert {j.target for j in demo} == set(demo_cfg["cdfsl"]["clip_lora"]["targets"]) == {"demo-colour"}


def test_targets_present_fall_back_with_a_note_or_name_the_setting(demo_cfg, monkeypatch, tmp_path, capsys):
    """Issue 16 item 7: a user's data need not hold the datasets the profile's settings name."""
    monkeypatch.setenv("DATA_ROOT", str(tmp_path))  # no real dataset: only the demo targets open
    cfg = profiles.apply(demo_cfg, {"cdfsl.focus": "ISIC", "cdfsl.map_targets": ["ChestX"]})
    names, skipped, focus = ce.present_targets(cfg)
    assert names == ["demo-colour", "demo-clutter"] and "eurosat" in skipped
    assert focus == "demo-colour" and ce.map_targets(cfg, names) == ["demo-colour"]
    out = capsys.readouterr().out
    assert "`cdfsl.focus` is 'ISIC'" in out and "`cdfsl.map_targets` is ['ChestX']" in out
    assert ce.map_targets(demo_cfg, names) == ["demo-clutter", "demo-colour"]  # the profile's, where present
    paper = profiles.load("paper")
    with pytest.raises(ce.notebook.NoDatasetError, match=r"cdfsl\.targets.*DATA_ROOT=.*ISIC"):
        ce.present_targets(paper)


def test_dtrap_jobs_follow_a_fallen_back_focus():
    paper = profiles.load("paper")
    jobs = ce.dtrap_jobs(paper, ["ISIC"], focus="ISIC")
    assert {("ISIC", m, 5) for m in ce.DTRAP_ROWS} <= {(j.target, j.method, j.shots) for j in jobs}


def _long():
    return pd.DataFrame({"method": ["LayerNorm", "LayerNorm", "Zero-shot (prompt ensemble)"],
                         "dataset": ["demo-colour", "eurosat", "demo-colour"], "shots": [5, 5, 5],
                         "accuracy": [80.0, 30.0, 70.123], "ci95": [3.0, 2.0, 1.456], "episodes": [8, 8, 8]}
                        ).set_index(["method", "dataset", "shots"])


def test_wide_formats_mean_and_interval():
    table = ct.ci_cells(_long())
    assert list(table.index) == ["LayerNorm", "Zero-shot (prompt ensemble)"]
    assert table.loc["Zero-shot (prompt ensemble)", "demo-colour 5-shot"] == "70.12 ± 1.46"


def test_headline_keeps_demo_cells_and_localisation():
    loc = pd.DataFrame({"method": ["A", "A"], "seed": [0, 1], "[CLS] attention": [0.5, 0.7],
                        "patch-text map": [0.2, 0.4], "chance": [0.2, 0.2]}).set_index(["method", "seed"])
    out = ct.headline(_long(), loc)
    assert out["accuracy | LayerNorm | demo-colour | 5-shot"] == 80.0
    assert not any("eurosat" in k for k in out)
    assert out["localisation | A | [CLS] attention"] == pytest.approx(0.6)
    assert out["localisation | A | patch-text map"] == pytest.approx(0.3)


def test_history_frame_round_trip():
    rows = torch.arange(2 * len(finetune.STEP_LOG), dtype=torch.float64).reshape(2, -1)
    frame = ce.history_frame({"history": rows})
    assert list(frame.columns) == list(finetune.STEP_LOG) and frame.shape == (2, len(finetune.STEP_LOG))


def test_checkpoint_and_remedy_cells_format_means_and_intervals():
    index = pd.MultiIndex.from_tuples([("D-Trap", "EuroSAT", 1, f) for f in ct.FIFTHS],
                                      names=["method", "dataset", "shots", "checkpoint"])
    long = pd.DataFrame({"accuracy": [float("nan"), 40.0, 41.0, 42.0, 43.456], "ci95": [float("nan"), 1, 1, 1, 2.345],
                         "episodes": 8}, index=index)
    cells = ct.checkpoint_cells(long)
    assert list(cells.columns) == ct.FIFTHS
    assert cells.loc[("D-Trap", "EuroSAT", 1), "1/5"] == "n/a"
    assert cells.loc[("D-Trap", "EuroSAT", 1), "5/5"] == "43.46 ± 2.35"
    remedy = pd.DataFrame({"method": ["CLIP-LoRA"], "dataset": ["x"], "shots": [5], "episodes": [8],
                           "accuracy": [70.0], "accuracy ci95": [3.0], "visual margin change": [1.234],
                           "visual margin change ci95": [0.5]}).set_index(["method", "dataset", "shots"])
    out = ct.remedy_cells(remedy)
    assert out.loc["CLIP-LoRA", "visual margin change"] == "1.23 ± 0.50" and list(out.columns) == [
        "accuracy", "visual margin change"]
