"""lib.experiments.cdfsl_episodes: method rows, profile resolution, tables' shapes (no training here)."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from lib.experiments import cdfsl_episodes as ce
from lib.methods import finetune
from lib.runtime import profiles


@pytest.fixture(scope="module")
def demo_cfg():
    return profiles.load("demo")


def test_every_method_has_its_own_cache_key(demo_cfg):
    keys = {m: repr(sorted(ce.config(demo_cfg, m).settings().items())) for m in ce.CDFSL_METHODS}
    assert len(set(keys.values())) == len(keys)


def test_table_rows_are_known_methods():
    assert set(ce.MAIN) <= set(ce.CDFSL_METHODS) and set(ce.ABLATION) <= set(ce.CDFSL_METHODS)
    assert ce.PROMPT_ZERO_SHOT in ce.MAIN


def test_methods_build_on_the_profiles_base(demo_cfg):
    paper = profiles.load("paper")
    assert ce.config(demo_cfg, "CC-CDFSL").tuning == demo_cfg["cdfsl"]["base"] == "ln"
    assert ce.config(paper, "D-Trap").tuning == "lora"
    assert ce.base_name(demo_cfg) == "LayerNorm" and ce.base_name(paper) == "LoRA"
    assert ce.map_methods(demo_cfg)[1] == "LayerNorm"


def test_switches_and_learning_rates(demo_cfg):
    cc = ce.config(demo_cfg, "CC-CDFSL")
    assert cc.cycle and cc.anchor_augment and cc.anchor_shrink and not cc.perturb
    trap = ce.config(demo_cfg, "D-Trap w/o alignment")
    assert trap.perturb and not trap.align and not trap.cycle
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


def _long():
    return pd.DataFrame({"method": ["LayerNorm", "LayerNorm", "Zero-shot (prompt ensemble)"],
                         "dataset": ["demo-colour", "eurosat", "demo-colour"], "shots": [5, 5, 5],
                         "accuracy": [80.0, 30.0, 70.123], "ci95": [3.0, 2.0, 1.456], "episodes": [8, 8, 8]}
                        ).set_index(["method", "dataset", "shots"])


def test_wide_formats_mean_and_interval():
    table = ce.ci_cells(_long())
    assert list(table.index) == ["LayerNorm", "Zero-shot (prompt ensemble)"]
    assert table.loc["Zero-shot (prompt ensemble)", "demo-colour 5-shot"] == "70.12 ± 1.46"


def test_headline_keeps_demo_cells_and_localisation():
    loc = pd.DataFrame({"method": ["A", "A"], "seed": [0, 1], "[CLS] attention": [0.5, 0.7],
                        "patch-text map": [0.2, 0.4], "chance": [0.2, 0.2]}).set_index(["method", "seed"])
    out = ce.headline(_long(), loc)
    assert out["accuracy | LayerNorm | demo-colour | 5-shot"] == 80.0
    assert not any("eurosat" in k for k in out)
    assert out["localisation | A | [CLS] attention"] == pytest.approx(0.6)
    assert out["localisation | A | patch-text map"] == pytest.approx(0.3)


def test_history_frame_round_trip():
    rows = torch.arange(2 * len(finetune.STEP_LOG), dtype=torch.float64).reshape(2, -1)
    frame = ce.history_frame({"history": rows})
    assert list(frame.columns) == list(finetune.STEP_LOG) and frame.shape == (2, len(finetune.STEP_LOG))
