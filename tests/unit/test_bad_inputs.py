"""The bad-input matrix (issue 7): one test per bad input, each asserting the exception type, that
the message names the culprit (file, class, parameter, model, eps, ...) and says what to do, and that
nothing a run had already written is lost: a feature-cache entry and a saved table written before the
failure (plus any file the failing call read) are still there, byte for byte, with no ``.*.tmp`` file
left beside them.

* wrong, unset or empty ``DATA_ROOT``, missing split file (``data.load_dataset``): DatasetError naming
  the root or file, the dataset and the expected layout;
* corrupt JPEG (``ds[i]``, ``feature_cache.image_features``, ``crops.crop_feature_chunks``): DatasetError
  naming the image; chunks encoded before it stay cached;
* descriptor JSON missing a class or naming an unknown one (``text_side.load_descriptors``):
  DescriptorError naming file and class;
* unknown open_clip model, checkpoint of another architecture or no checkpoint at all
  (``models.load_model``): ModelLoadError naming the model (and how to list all) or file and architecture;
* NaN, inf or zero-norm features (every ``scoring.*_logits``, ``fair.pseudo_labels``): ValueError naming
  the argument and the rows;
* Sinkhorn eps = 1e-4 (``sinkhorn.sinkhorn_plans``, ``scoring.lazsl_logits``): no error: the log domain
  stays finite and meets the marginals, with a RuntimeWarning naming eps and n_iter when too few
  iterations leave it unconverged;
* top-k of more crops than there are (``scoring.wca_logits``, ``scoring.las_logits``, ``fair``): ValueError
  naming k and N;
* more shots + queries than a class has (``sample_episodes``): ValueError naming the class and
  both counts.

(A notebook parameter of the wrong type is tested with ``lib.regenerate``.)
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import open_clip
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lib import models
from lib.data import DatasetError, load_dataset
from lib.data.base import DESCRIPTOR_DIR
from lib.data.coop import COOP_DATASETS, CoOpDataset
from lib.data.torchvision_source import TorchvisionDataset
from lib.features import cache as feature_cache
from lib.features import crops
from lib.features import text as text_side
from lib.methods import fair, scoring, sinkhorn
from lib.methods.episodes import sample_episodes
from lib.report import outputs

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/conftest.py

CLASSES = ["Annual Crop Land", "Forest", "Sea or Lake"]
FOLDERS = ["AnnualCrop", "Forest", "SeaLake"]



# ---------------------------------------------------------------- what a run wrote before the failure


@dataclass
class Written:
    """Files a run wrote (or read) before the failure, with their bytes."""

    cache: feature_cache.FeatureCache
    figures_root: Path
    files: dict[Path, bytes] = field(default_factory=dict)

    def keep(self, *paths: Path) -> None:
        for path in paths:
            self.files[Path(path)] = Path(path).read_bytes()

    def assert_intact(self) -> None:
        changed = [p for p, raw in self.files.items() if not p.is_file() or p.read_bytes() != raw]
        assert not changed, f"lost or changed: {changed}"
        folders = {self.cache.root, self.figures_root, *(p.parent for p in self.files)}
        leftovers = [t for folder in folders for t in folder.rglob(".*.tmp")]
        assert not leftovers, f"temporary files left: {leftovers}"


@pytest.fixture
def written(tmp_path) -> Written:
    """A feature-cache entry and a saved table, as an earlier step of the run would have left them."""
    cache = feature_cache.FeatureCache(tmp_path / "cache")
    cache.get_or_compute({"kind": "earlier step"}, lambda: torch.arange(12.0).reshape(3, 4))
    root = tmp_path / "figures"
    table = outputs.save_table(pd.DataFrame({"accuracy": [81.234, 12.5]}, index=["clip", "lazsl"]),
                               "01_zero_shot_tables", "earlier", root=root)
    w = Written(cache, root)
    w.keep(*cache.root.rglob("*.pt"), *cache.root.rglob("*.json"), table)
    assert len(w.files) == 3
    return w


@contextlib.contextmanager
def fails_cleanly(written: Written, error: type[BaseException], *culprits: str):
    """The body raises ``error`` whose message contains every one of ``culprits``; nothing written is lost."""
    with pytest.raises(error) as info:
        yield info
    message = str(info.value)
    missing = [c for c in culprits if c not in message]
    assert not missing, f"the message does not name {missing}: {message}"
    written.assert_intact()


# ---------------------------------------------------------------- tiny CoOp datasets in tmp_path


def write_jpeg(path: Path, seed: int, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)


def make_coop(root: Path, name: str = "EuroSAT", per_split: int = 2) -> Path:
    """``name`` in the CoOp layout under ``root``: 3 classes, ``per_split`` images a class in each split."""
    entry = COOP_DATASETS[name]
    split, n = {}, 0
    for s in ("train", "val", "test"):
        split[s] = []
        for label, (folder, cname) in enumerate(zip(FOLDERS, CLASSES)):
            for _ in range(per_split):
                relpath = f"{folder}/{folder}_{n}.jpg"
                write_jpeg(root / entry.folder / entry.image_dir / relpath, seed=n)
                split[s].append([relpath, label, cname])
                n += 1
    (root / entry.folder / entry.split_file).write_text(json.dumps(split))
    return root


# ---------------------------------------------------------------- DATA_ROOT


@pytest.mark.parametrize("how", ["root argument", "DATA_ROOT"])
@pytest.mark.parametrize("name, says", [
    ("EuroSAT", "EuroSAT not found under {root} (no such folder): expected the CoOp layout "
                "<root>/eurosat/2750/... and <root>/eurosat/split_zhou_EuroSAT.json, or the torchvision layout"),
    ("UCF101", "UCF101: data root {root} does not exist; expected <root>/ucf101/UCF-101-midframes/... and "
               "<root>/ucf101/split_zhou_UCF101.json"),
    ("ImageNet", "ImageNet dataset folder not found: {root}/imagenet does not exist; expected "
                 "<root>/imagenet/classnames.txt"),
])
def test_wrong_data_root_names_root_dataset_and_layout(written, tmp_path, monkeypatch, how, name, says):
    missing = tmp_path / "no" / "such" / "data"
    monkeypatch.delenv("DATA_ROOT", raising=False)
    if how == "DATA_ROOT":
        monkeypatch.setenv("DATA_ROOT", str(missing))
    with fails_cleanly(written, DatasetError, says.format(root=missing)):
        load_dataset(name, "test", root=missing if how == "root argument" else None)
    assert not missing.exists()  # nothing created on the way


@pytest.mark.parametrize("value", [None, ""])
def test_unset_data_root_says_to_set_it(written, monkeypatch, value):
    monkeypatch.delenv("DATA_ROOT", raising=False)
    if value is not None:
        monkeypatch.setenv("DATA_ROOT", value)
    with fails_cleanly(written, DatasetError, "DATA_ROOT is not set", "point DATA_ROOT at the folder", "EuroSAT",
                       "<root>/eurosat/split_zhou_EuroSAT.json"):
        load_dataset("EuroSAT", "test")


@pytest.mark.parametrize("name, layout", [
    ("EuroSAT", "<root>/eurosat/split_zhou_EuroSAT.json"),  # names both layouts: CoOp and torchvision
    ("UCF101", "<root>/ucf101/split_zhou_UCF101.json"),  # CoOp only
    ("ImageNet", "<root>/imagenet/classnames.txt"),
    ("CUB", "<root>/CUB_200_2011/"),
])
def test_empty_data_root_names_root_dataset_and_layout(written, tmp_path, monkeypatch, name, layout):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("DATA_ROOT", str(empty))
    with fails_cleanly(written, DatasetError, str(empty), name, layout):
        load_dataset(name, "test")
    assert list(empty.iterdir()) == []


# ---------------------------------------------------------------- split files


@pytest.mark.parametrize("name, layout", [("EuroSAT", "coop"), ("UCF101", "auto")])
def test_missing_split_file_is_named(written, tmp_path, name, layout):
    root = make_coop(tmp_path / "data", name)
    entry = COOP_DATASETS[name]
    split_file = root / entry.folder / entry.split_file
    split_file.unlink()
    images = sorted((root / entry.folder).rglob("*.jpg"))
    written.keep(*images)
    with fails_cleanly(written, DatasetError, f"missing {name} split file {split_file}", "expected <root>/"):
        load_dataset(name, "train", root=root, layout=layout)


def test_missing_split_file_with_the_images_present_reads_the_torchvision_layout(tmp_path):
    """Documented fallback, not an error: without its split file, EuroSAT's CoOp folder is exactly
    torchvision's layout, so layout="auto" reads it that way (folder class names, carved splits)."""
    root = make_coop(tmp_path / "data", per_split=3)
    (root / "eurosat" / "split_zhou_EuroSAT.json").unlink()
    ds = load_dataset("EuroSAT", "train", root=root)
    assert isinstance(ds, TorchvisionDataset) and ds.classnames == FOLDERS


# ---------------------------------------------------------------- corrupt images


def truncated_jpeg() -> bytes:
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


CORRUPT = {"truncated": truncated_jpeg(), "not an image": b"<html>404 Not Found</html>\n", "empty file": b""}


@pytest.mark.parametrize("kind", CORRUPT)
def test_corrupt_jpeg_is_named_when_read(written, tmp_path, kind):
    ds = CoOpDataset(make_coop(tmp_path / "data"), "EuroSAT", "test")
    bad = ds.paths[3]
    bad.write_bytes(CORRUPT[kind])
    written.keep(ds.split_file, bad)
    with fails_cleanly(written, DatasetError, "EuroSAT/test: cannot read image", str(bad), "replace the file"):
        ds[3]
    assert ds[2][0].size == (8, 8)  # the others still read


def test_corrupt_jpeg_while_encoding_writes_no_entry_and_keeps_the_others(written, handle, tmp_path):
    ds = CoOpDataset(make_coop(tmp_path / "data"), "EuroSAT", "test")
    bad = ds.paths[4]
    bad.write_bytes(CORRUPT["truncated"])
    before = sorted(written.cache.root.rglob("*"))
    with fails_cleanly(written, DatasetError, str(bad)):
        feature_cache.image_features(handle, ds, cache=written.cache)
    assert sorted(written.cache.root.rglob("*")) == before  # no entry for the failed features
    assert feature_cache.image_parts(handle, ds, "global", None) not in written.cache


def test_corrupt_jpeg_in_a_later_chunk_keeps_the_chunks_already_encoded(written, handle, tmp_path):
    """Crop features are cached chunk by chunk: the chunk encoded before the corrupt image stays cached
    and a rerun after replacing the file encodes only the rest."""
    ds = CoOpDataset(make_coop(tmp_path / "data", per_split=2), "EuroSAT", "test")  # 6 images
    bad = ds.paths[3]
    good = bad.read_bytes()
    bad.write_bytes(CORRUPT["not an image"])
    spec = crops.CropSpec(n=2, seed=0)
    done = []
    with fails_cleanly(written, DatasetError, str(bad)):
        for indices, feats in crops.crop_feature_chunks(handle, ds, spec, cache=written.cache, chunk=2):
            done.append(indices)
    assert done == [range(0, 2)]
    first = sorted(written.cache.root.rglob("*.pt"))
    assert len(first) == 2  # the earlier step's entry and chunk 0
    written.keep(*first)
    bad.write_bytes(good)
    cache = feature_cache.FeatureCache(written.cache.root)
    feats = crops.crop_features(handle, ds, spec, cache=cache, chunk=2)
    assert (cache.hits, cache.misses) == (1, 2) and feats["crops"].shape[:2] == (6, 2)
    written.assert_intact()


# ---------------------------------------------------------------- descriptor files


@pytest.fixture
def descriptor_file(tmp_path, written) -> Path:
    path = tmp_path / "eurosat_descriptors.json"
    path.write_text(json.dumps({"annual_crop_land": ["rows of crops."], "Forest": ["dense trees."],
                                "Sea or Lake": ["open water."]}, indent=1))
    written.keep(path)
    return path


def test_descriptor_file_missing_a_class_names_it(written, descriptor_file):
    with fails_cleanly(written, text_side.DescriptorError, str(descriptor_file), "no entry for class(es) ['Pasture']",
                       "add one list of sentences per class"):
        text_side.load_descriptors(descriptor_file, [*CLASSES, "Pasture"])


def test_descriptor_file_naming_an_unknown_class_names_it(written, descriptor_file):
    with fails_cleanly(written, text_side.DescriptorError, str(descriptor_file),
                       "not in the dataset: ['Sea or Lake']", "extra='ignore'"):
        text_side.load_descriptors(descriptor_file, CLASSES[:2], format="dclip")
    assert len(text_side.load_descriptors(descriptor_file, CLASSES[:2], extra="ignore")) == 2


def test_shipped_descriptor_file_against_another_class_list(written):
    path = DESCRIPTOR_DIR / "eurosat.json"
    written.keep(path)
    classnames = list(json.loads(path.read_text()))
    with fails_cleanly(written, text_side.DescriptorError, str(path), "['Glacier']"):
        text_side.load_descriptors(path, [*classnames, "Glacier"])


# ---------------------------------------------------------------- models and checkpoints


@pytest.mark.parametrize("name, hint", [("ViT-B-33", "did you mean ['ViT-B-32'"), ("clip-tiny-demo", "")])
def test_unknown_model_name_is_named_with_how_to_list_all(written, name, hint):
    with fails_cleanly(written, models.ModelLoadError, f"unknown open_clip model name {name!r}", hint,
                       "open_clip.list_models() lists all"):
        models.load_model(name, None)


def test_checkpoint_of_another_architecture_names_file_and_architecture(written, tmp_path):
    cfg = copy.deepcopy(open_clip.get_model_config(models.DEMO_MODEL))
    cfg["vision_cfg"]["width"] = 64  # a narrower tiny ViT, built without registering a config
    torch.manual_seed(0)
    narrow = open_clip.model.CLIP(cfg["embed_dim"], cfg["vision_cfg"], cfg["text_cfg"])
    path = tmp_path / "narrow-vit.pt"
    torch.save(narrow.state_dict(), path)
    written.keep(path)
    with fails_cleanly(written, models.ModelLoadError, str(path), f"does not fit architecture {models.DEMO_MODEL!r}",
                       "size mismatch", "load it with the architecture it was saved from"):
        models.load_model(models.DEMO_MODEL, str(path))


@pytest.mark.parametrize("content", ["garbage", "truncated", "not a state dict"])
def test_file_that_is_no_checkpoint_names_file_and_architecture(written, tmp_path, content):
    path = tmp_path / "weights.pt"
    if content == "garbage":
        path.write_bytes(b"<html>rate limit exceeded</html>\n")  # a failed download
    elif content == "truncated":
        torch.save({"logit_scale": torch.zeros(4096)}, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        torch.save([1, 2, 3], path)
    written.keep(path)
    with fails_cleanly(written, models.ModelLoadError, str(path),
                       f"cannot be read as open_clip weights for {models.DEMO_MODEL!r}", "expected a state dict"):
        models.load_model(models.DEMO_MODEL, str(path))


# ---------------------------------------------------------------- NaN, inf and zero-norm features

B, N, D, C, M, H = 3, 5, 8, 4, 3, 6
SPECS = {"img": "B", "txt": "C", "class_txt": "C", "anchors": "C", "img_cls": "B",
         "crops": "(B, N)", "crop_cls": "(B, N)", "desc": "(C, M)"}


def features() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)

    def unit(*shape):
        return F.normalize(torch.randn(*shape, generator=g), dim=-1)

    mask = torch.ones(C, M, dtype=torch.bool)
    mask[3, 2] = False
    desc = unit(C, M, D)
    desc[3, 2] = 0  # padding, as pad_descriptions leaves it
    return {"img": unit(B, D), "txt": unit(C, D), "class_txt": unit(C, D), "anchors": unit(C, D),
            "crops": unit(B, N, D), "desc": desc, "mask": mask,
            "crop_cls": torch.randn(B, N, H, generator=g), "img_cls": torch.randn(B, H, generator=g)}


CALLS = {
    "clip_logits": (lambda x: scoring.clip_logits(x["img"], x["txt"]), ["img", "txt"]),
    "cupl_logits": (lambda x: scoring.cupl_logits(x["img"], x["desc"], x["mask"]), ["img", "desc"]),
    "dclip_logits": (lambda x: scoring.dclip_logits(x["img"], x["desc"], x["mask"]), ["img", "desc"]),
    "wca_logits": (lambda x: scoring.wca_logits(x["crops"], x["img"], x["desc"], x["mask"], x["class_txt"],
                                                top_k=2, crop_cls=x["crop_cls"], img_cls=x["img_cls"]),
                   ["crops", "img", "desc", "class_txt", "crop_cls", "img_cls"]),
    "las_logits": (lambda x: scoring.las_logits(x["crops"], x["crop_cls"], x["img_cls"], x["anchors"], k=2),
                   ["crops", "crop_cls", "img_cls", "anchors"]),
    "las_logits(img=...)": (lambda x: scoring.las_logits(x["crops"], None, None, x["anchors"], k=2, img=x["img"]),
                            ["img"]),
    "lazsl_logits": (lambda x: scoring.lazsl_logits(x["crops"], x["img"], x["desc"], x["mask"]),
                     ["crops", "img", "desc"]),
    "fair.pseudo_labels": (lambda x: fair.pseudo_labels(x["crops"], x["crop_cls"], x["img_cls"], x["anchors"], k=2),
                           ["crops", "crop_cls", "img_cls"]),
}
CASES = [(fn, arg) for fn, (_, args) in CALLS.items() for arg in args]


def test_clean_features_and_zero_padding_score_finite():
    x = features()
    for fn, (call, _) in CALLS.items():
        out = call(x)
        out = out[-1] if isinstance(out, tuple) else out
        assert out.shape == (B, C) and torch.isfinite(out).all(), fn


@pytest.mark.parametrize("problem", ["nan", "inf", "zero"])
@pytest.mark.parametrize("fn, arg", CASES, ids=[f"{fn}-{arg}" for fn, arg in CASES])
def test_bad_feature_values_raise_naming_argument_and_rows(written, fn, arg, problem):
    """NaN or inf: a ValueError naming the argument and where (never NaN logits). Zero-norm vectors:
    also a ValueError, not a finite result: the contract is L2-normalised features, a zero vector has
    no direction, it would score 0 against every class and argmax would then pick class 0 in silence."""
    x = features()
    value = {"nan": float("nan"), "inf": float("inf"), "zero": 0.0}[problem]
    row = (1, 2) if x[arg].ndim == 3 else (1,)  # a real description: mask[1, 2] is True
    if problem == "zero":
        x[arg][row] = 0.0
    else:
        x[arg][(*row, 4)] = value  # one entry of the vector is enough
    where = f"{SPECS[arg]} = [{row if len(row) > 1 else row[0]}]"
    says = "contains NaN or inf at" if problem != "zero" else "has zero-norm feature vectors at"
    with fails_cleanly(written, ValueError, f"{arg} {says} {where}:") as info:
        CALLS[fn][0](x)
    assert str(info.value).startswith(arg)


def test_many_bad_rows_are_listed_briefly():
    x = features()
    crops_ = torch.full((2, 20, D), float("nan"))
    with pytest.raises(ValueError, match=re.escape("(B, N) = [(0, 0), (0, 1)") + r".* \.\.\. \(40 in all\)"):
        scoring.lazsl_logits(crops_, x["img"][:2], x["desc"], x["mask"])


# ---------------------------------------------------------------- Sinkhorn at eps = 1e-4

EPS = 1e-4  # costs in [0, 2]: exp(-cost / eps) underflows to 0 below cost ~ 0.01 in float64


def lazsl_costs(dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    x = F.normalize(torch.randn(3, 12, 8, generator=g, dtype=torch.float64), dim=-1)
    y = F.normalize(torch.randn(3, 6, 8, generator=g, dtype=torch.float64), dim=-1)
    return (1 - x @ y.transpose(1, 2)).to(dtype)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-3), (torch.float32, 5e-3)])
def test_sinkhorn_at_eps_1e_4_is_finite_and_meets_its_marginals(written, dtype, tol):
    cost = lazsl_costs(dtype)
    assert (torch.exp(-cost.double() / EPS) == 0).any()  # the scaling form would divide 0 by 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # converged: nothing to warn about
        plans = sinkhorn.sinkhorn_plans(cost, eps=EPS, n_iter=20000, tol=1e-9)
    assert plans.dtype == dtype and torch.isfinite(plans).all()
    torch.testing.assert_close(plans, sinkhorn.sinkhorn_plans(cost, eps=EPS, n_iter=20000, tol=1e-9, method="log"))
    torch.testing.assert_close(plans.sum(2) * 12, torch.ones(3, 12, dtype=dtype), atol=tol, rtol=0)
    torch.testing.assert_close(plans.sum(1) * 6, torch.ones(3, 6, dtype=dtype), atol=tol, rtol=0)
    written.assert_intact()


def test_sinkhorn_at_eps_1e_4_warns_when_n_iter_is_too_small(written):
    """At eps = 1e-4 the log domain stays finite, but 100 iterations (LaZSL's default) leave the rows
    far from their marginals: the plans come back with a warning naming eps and n_iter."""
    cost = lazsl_costs(torch.float64)
    with pytest.warns(RuntimeWarning, match=r"did not converge: after n_iter=100 iterations at eps=0\.0001 "
                                            r"\(log form\).*raise n_iter"):
        plans = sinkhorn.sinkhorn_plans(cost, eps=EPS)
    assert torch.isfinite(plans).all()
    written.assert_intact()


def test_lazsl_at_eps_1e_4_is_finite_and_its_plans_meet_the_marginals(written):
    x = features()
    xd = {k: v.double() if v.is_floating_point() else v for k, v in x.items()}
    logits, plans = scoring.lazsl_logits(xd["crops"], xd["img"], xd["desc"], xd["mask"], eps=EPS, n_iter=20000,
                                         tol=1e-9, return_plans=True)
    assert torch.isfinite(logits).all() and torch.isfinite(plans).all()
    sim = torch.einsum("bnd,bd->bn", xd["crops"], xd["img"])
    a = (sim >= sim.mean(1, keepdim=True)).double()  # vision selection
    a = a / a.sum(1, keepdim=True)
    b = xd["mask"].double() / xd["mask"].sum(1, keepdim=True)
    torch.testing.assert_close(plans.sum(3), a[:, None, :].expand(B, C, N), atol=1e-4, rtol=0)
    torch.testing.assert_close(plans.sum(2), b[None].expand(B, C, M), atol=1e-4, rtol=0)
    written.assert_intact()


# ---------------------------------------------------------------- top-k of more crops than there are


@pytest.mark.parametrize("k", [N + 1, 0])
def test_top_k_outside_the_crops_names_k_and_n(written, k):
    x = features()
    with fails_cleanly(written, ValueError, f"top_k={k} must lie in 1..{N} (the number of crops)"):
        scoring.wca_logits(x["crops"], x["img"], x["desc"], x["mask"], top_k=k)
    with fails_cleanly(written, ValueError, f"k={k} must lie in 1..{N} (the number of crops)"):
        scoring.las_logits(x["crops"], x["crop_cls"], x["img_cls"], x["anchors"], k=k)
    with fails_cleanly(written, ValueError, f"k={k} must lie in 1..{N}"):
        fair.pseudo_labels(x["crops"], x["crop_cls"], x["img_cls"], x["anchors"], k=k)


def test_fair_config_with_more_top_k_than_crops_names_both(written):
    with fails_cleanly(written, ValueError, "FAIR parameter top_k=17 must lie in 1..n_crops=16"):
        fair.FairConfig(n_crops=16, top_k=17)


# ---------------------------------------------------------------- few-shot episodes


def test_more_shots_than_a_class_has_names_the_class_and_counts(written):
    labels = [0] * 12 + [1] * 7 + [2] * 12
    with fails_cleanly(written, ValueError, "pool: class 'Forest' (label 1) has 7 images",
                       "a 5-shot episode with 3 queries per class needs 8 (k_shot + n_query)",
                       "lower k_shot or n_query"):
        sample_episodes(labels, n_way=2, k_shot=5, n_query=3, classnames=CLASSES, dataset="pool")


@pytest.mark.data
def test_more_shots_than_eurosat_val_has(written, eurosat_root):
    ds = load_dataset("EuroSAT", "val", root=eurosat_root)  # 20 images a class
    written.keep(ds.split_file)
    with fails_cleanly(written, ValueError, "EuroSAT: class 'Annual Crop Land' (label 0) has 20 images",
                       "a 5-shot episode with 16 queries per class needs 21"):
        sample_episodes(ds.labels, n_way=5, k_shot=5, n_query=16, classnames=ds.classnames, dataset=ds.name)
    assert len(sample_episodes(ds.labels, n_way=5, k_shot=5, n_query=15)[0].query) == 75
