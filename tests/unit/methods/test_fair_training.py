"""lib.methods.fair: Algorithm 1's training loop (Trainer, adapt, Adapted; the cached run) on a tiny demo subset.

Kept fast: the random-weight demo model (32 px, 3 blocks), 16 demo images (8 for the tests that run
``adapt``), batches of 8, one epoch (two for determinism), N = 4 crops with k = 2. Nothing here
downloads anything or calls the text encoder.
"""
from __future__ import annotations

import copy
import dataclasses
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from timm.data.auto_augment import RandAugment

from lib import models
from lib.data.resolve import demo_dataset
from lib.experiments import fair_ablations as fa
from lib.experiments.protocol import config_from
from lib.features import cache as feature_cache
from lib.features import text as text_side
from lib.methods import fair, fair_views, metrics, scoring
from lib.models import tuning

N_IMAGES = 16
FAST = dict(epochs=1, batch_size=8, n_crops=4, top_k=2, flip=False)


def _config(**overrides) -> fair.FairConfig:
    return fair.FairConfig(**{**FAST, **overrides})


def _load_handle() -> models.ModelHandle:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return models.load_model(models.DEMO_MODEL, None)


@pytest.fixture(scope="module")
def handle():
    return _load_handle()


@pytest.fixture(scope="module")
def dataset():
    return demo_dataset("demo-colour", "train", n=N_IMAGES)


@pytest.fixture(scope="module")
def small():
    """One batch's worth: for the tests that only need adapt to run."""
    return demo_dataset("demo-colour", "train", n=FAST["batch_size"])


@pytest.fixture(scope="module")
def text(handle, dataset):
    """Random unit "description embeddings" (3 per class, one class with a single real one): the text
    side is an input of the training loop, so no text encoder is needed."""
    gen = torch.Generator().manual_seed(0)
    d = handle.model.visual.output_dim
    per_class = [F.normalize(torch.randn(1 if c == 0 else 3, d, generator=gen), dim=-1)
                 for c in range(len(dataset.classnames))]
    desc, mask = text_side.pad_descriptions(per_class)
    return fair.Text.from_descriptions(desc, mask)


@pytest.fixture(scope="module")
def batch(handle, dataset):
    """The first (weak, strong, indices, labels) batch of the seeded loader."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return next(iter(fair.loader(handle, dataset, _config())))


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


# --------------------------------------------------------------------------------------------------
# what trains, what does not


def test_one_step_updates_only_the_layernorms_and_the_anchors(handle, text, batch):
    weak, strong, indices, _ = batch
    trainer = fair.Trainer(handle, text, _config(), steps=2)
    before, anchors_before = _snapshot(trainer.visual), trainer.anchors.detach().clone()
    model_before = _snapshot(handle.model)
    out = trainer.step(weak, strong, indices)

    assert set(out) == {"pseudo_labels", "loss_st", "loss_reg", "gamma_mean", "lr"}
    assert out["pseudo_labels"].shape == (len(weak),)
    assert torch.isfinite(torch.tensor([out["loss_st"], out["loss_reg"]])).all()
    assert out["lr"] == pytest.approx(1e-4)

    trained = {id(p) for p in trainer.params}
    layernorms = {id(p) for p in tuning.layernorm_parameters(trainer.visual)}
    assert trained == layernorms
    n_changed = 0
    for name, p in trainer.visual.named_parameters():
        if id(p) in trained:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
            assert not torch.equal(p, before[name]), f"{name} did not move"
            n_changed += 1
        else:
            assert p.grad is None, name
            assert torch.equal(p, before[name]), f"frozen {name} changed"
    assert n_changed == len(trainer.params)
    assert trainer.anchors.grad is not None and not torch.equal(trainer.anchors.detach(), anchors_before)
    # the handle's own encoder is a different module and did not move
    for name, p in handle.model.named_parameters():
        assert torch.equal(p, model_before[name]), name
        assert p.grad is None, name


@pytest.mark.parametrize("tuning_method", ["ln", "full"])
def test_pseudo_labels_carry_no_gradient(handle, text, batch, tuning_method):
    weak, _, indices, _ = batch
    visual = copy.deepcopy(handle.model.visual).train()
    tuning.prepare(visual, tuning_method)
    assert any(p.requires_grad for p in visual.parameters())
    anchors = torch.nn.Parameter(text.initial.clone())
    with torch.enable_grad():
        labels, gamma, scores = fair.weak_pseudo_labels(visual, weak, indices, _config(), anchors, text)
    assert scores.shape == (len(weak), text.initial.shape[0])
    assert not scores.requires_grad and scores.grad_fn is None
    assert not gamma.requires_grad and not labels.requires_grad
    assert torch.equal(labels, scores.argmax(1))
    top2 = 100.0 * scores.topk(2, 1).values  # Alg. 1: eq. 16 on the top-2 logits, as it is (no batch norm)
    torch.testing.assert_close(gamma, top2[:, 0] * (top2[:, 0] - top2[:, 1]))
    _, normed, _ = fair.weak_pseudo_labels(visual, weak, indices, _config(gamma_norm=True), anchors, text)
    torch.testing.assert_close(normed, gamma / gamma.mean())  # the named option: divided by its batch mean
    torch.testing.assert_close(normed.mean(), torch.tensor(1.0))


def test_adapt_never_calls_the_text_encoder_and_trains_a_copy(text, dataset, monkeypatch):
    handle = _load_handle()  # its own handle: the text side is broken on purpose

    def boom(*args, **kwargs):
        raise AssertionError("the text encoder was called during training")

    handle.model.encode_text = boom
    handle.tokenizer = boom
    handle.model.transformer.register_forward_pre_hook(lambda *args: boom())  # the text transformer itself
    monkeypatch.setattr(models, "encode_texts", boom)
    with pytest.raises(AssertionError, match="text encoder"):  # the traps work
        models.encode_texts(handle, ["a photo of a zero"])
    before = _snapshot(handle.model)
    buffers = {name: b.clone() for name, b in handle.model.named_buffers()}

    result = fair.adapt(handle, dataset, text, _config())

    assert result["history"].shape == (N_IMAGES // FAST["batch_size"], len(fair.TRAINING_LOG))
    assert result["anchors"].shape == text.initial.shape
    assert not torch.equal(result["anchors"], text.initial)
    assert [name for name, _ in handle.model.named_parameters()] == list(before)  # no adapters leaked in
    for name, p in handle.model.named_parameters():
        assert torch.equal(p, before[name]), f"adapt changed the handle's {name}"
    for name, b in handle.model.named_buffers():
        assert torch.equal(b, buffers[name]), name
    assert all(p.requires_grad for p in handle.model.visual.parameters())  # the handle's model is not frozen
    assert handle.model.training is False


# --------------------------------------------------------------------------------------------------
# determinism and the global RNG


def test_seeded_adapt_is_deterministic(handle, small, text):
    config = _config(epochs=2, flip=True)  # two epochs: the crops are re-drawn per epoch
    first = fair.adapt(handle, small, text, config)
    second = fair.adapt(handle, small, text, config)
    assert torch.equal(first["anchors"], second["anchors"])
    assert torch.equal(first["history"], second["history"])
    assert first.keys() == second.keys()
    state_keys = [k for k in first if k.startswith("state/")]
    assert len(state_keys) == len(tuning.layernorm_parameters(handle.model.visual))
    for name in first:
        assert torch.equal(first[name], second[name]), name
    assert first["history"].shape == (2, len(fair.TRAINING_LOG)) and first["history"][:, 0].tolist() == [0, 1]
    other = fair.adapt(handle, small, text, dataclasses.replace(config, seed=1))
    assert not torch.equal(first["anchors"], other["anchors"])
    assert not torch.equal(first["history"], other["history"])


def test_adapt_leaves_the_global_rng_alone(handle, small, text):
    torch.manual_seed(1234)
    fair.adapt(handle, small, text, _config(seed=5))
    after_adapt = torch.rand(8)
    torch.manual_seed(1234)
    untouched = torch.rand(8)
    assert torch.equal(after_adapt, untouched)


# --------------------------------------------------------------------------------------------------
# the weak view's crops


def test_crop_boxes_are_seeded_by_seed_epoch_and_index():
    config, size = _config(), 32
    indices = torch.tensor([3, 7, 11])
    boxes = fair.crop_boxes(indices, size, config, epoch=0)
    n = config.n_crops
    assert boxes.shape == (len(indices) * n, 5)
    assert torch.equal(boxes[:, 0], torch.arange(len(indices)).repeat_interleave(n).float())
    assert torch.equal(boxes, fair.crop_boxes(indices, size, config, epoch=0))
    assert not torch.equal(boxes[:, 1:], fair.crop_boxes(indices, size, config, epoch=1)[:, 1:])
    assert not torch.equal(boxes[:, 1:], fair.crop_boxes(indices, size, _config(seed=1), epoch=0)[:, 1:])
    # an image's crops depend on its index, not on where it sits in the batch
    moved = fair.crop_boxes(torch.tensor([11, 3]), size, config, epoch=0)
    assert torch.equal(moved[:n, 1:], boxes[2 * n:, 1:]) and torch.equal(moved[n:, 1:], boxes[:n, 1:])
    assert not torch.equal(boxes[:n, 1:], boxes[n:2 * n, 1:])  # different images, different crops
    # inside the image, square, side in [alpha, beta] x size
    x0, y0, x1, y1 = boxes[:, 1:].unbind(1)
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= size).all() and (y1 <= size).all()
    side = x1 - x0
    assert torch.equal(side, y1 - y0)
    assert (side >= int(config.alpha * size)).all() and (side <= config.beta * size).all()


def test_cut_crops_shape_and_the_whole_image_box():
    gen = torch.Generator().manual_seed(0)
    size, b = 32, 2
    weak = torch.randn(b, 3, size, size, generator=gen)
    config = _config()
    boxes = fair.crop_boxes(torch.tensor([0, 1]), size, config, epoch=0)
    out = fair.cut_crops(weak, boxes)
    assert out.shape == (b * config.n_crops, 3, size, size)
    assert torch.isfinite(out).all()
    # a box covering the whole image gives the image back exactly: each output pixel samples its own centre
    whole = torch.tensor([[0.0, 0, 0, size, size], [1.0, 0, 0, size, size]])
    assert torch.equal(fair.cut_crops(weak, whole), weak)
    constant = torch.full((b, 3, size, size), 0.7)
    # a half-image box is that quarter enlarged twice: bilinear, so a ramp stays a ramp of twice the slope
    ramp = torch.arange(size, dtype=torch.float32)
    smooth = (ramp[None, :] + 0.5 * ramp[:, None]).expand(b, 3, size, size).contiguous()
    half = torch.tensor([[0.0, 8, 8, 8 + size / 2, 8 + size / 2]])
    got = fair.cut_crops(smooth, half)[0, 0]
    inner = got[1:-1, 1:-1]  # the border rows clamp at the box edge
    torch.testing.assert_close(inner[:, 1:] - inner[:, :-1], torch.full_like(inner[:, 1:], 0.5), atol=1e-5, rtol=0)
    torch.testing.assert_close(inner[1:] - inner[:-1], torch.full_like(inner[1:], 0.25), atol=1e-5, rtol=0)
    # box row b takes its crop from image b
    swapped = fair.cut_crops(constant * torch.tensor([1.0, 2.0])[:, None, None, None], whole.flip(0))
    torch.testing.assert_close(swapped[0], constant[0] * 2, atol=1e-6, rtol=0)


def test_the_whole_box_of_a_real_weak_view_is_the_view(handle, batch):
    weak = batch[0][:4]
    size = weak.shape[-1]
    whole = torch.tensor([[float(i), 0, 0, size, size] for i in range(len(weak))])
    assert torch.equal(fair.cut_crops(weak, whole), weak)


# --------------------------------------------------------------------------------------------------
# pseudo-labelling scores of every row


def _tokens(b: int, n: int, d: int, h: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"features": F.normalize(torch.randn(b + b * n, d, generator=gen), dim=-1),
            "cls": torch.randn(b + b * n, h, generator=gen)}


ROW_NAMES = [name for name, row in fa.ROWS.items() if "tuning" not in row]


@pytest.mark.parametrize("row", ROW_NAMES)
def test_pseudo_label_scores_of_each_row_are_b_by_c(text, row):
    overrides = {**FAST, **fa.ROWS[row]}
    if overrides.get("top_k", 0) is not None:
        overrides["top_k"] = FAST["top_k"]
    config = fair.FairConfig(**overrides)
    b, (c, d) = 3, text.initial.shape
    tokens = _tokens(b, config.n_crops, d, 16)
    anchors = torch.nn.Parameter(text.initial + 0.1)
    scores = fair.pseudo_label_scores(config, tokens, b, anchors, text)
    assert scores.shape == (b, c)
    assert torch.isfinite(scores).all()
    assert not scores.requires_grad


def test_pseudo_label_scores_match_their_definitions(text):
    b, (c, d), n = 3, text.initial.shape, FAST["n_crops"]
    tokens = _tokens(b, n, d, 16, seed=1)
    gen = torch.Generator().manual_seed(2)
    anchors = torch.nn.Parameter(text.initial + 0.3 * torch.randn(c, d, generator=gen))
    img = tokens["features"][:b]

    global_initial = fair.pseudo_label_scores(_config(view="global", text="initial"), tokens, b, anchors, text)
    torch.testing.assert_close(global_initial, img @ text.initial.T)
    global_anchors = fair.pseudo_label_scores(_config(view="global"), tokens, b, anchors, text)
    torch.testing.assert_close(global_anchors, img @ F.normalize(anchors.detach(), dim=-1).T)
    assert not torch.allclose(global_anchors, global_initial)

    crops = tokens["features"][b:].reshape(b, n, d)
    crop_cls, img_cls = tokens["cls"][b:].reshape(b, n, -1), tokens["cls"][:b]
    las = fair.pseudo_label_scores(_config(), tokens, b, anchors, text)
    expected = scoring.las_logits(crops, crop_cls, img_cls, F.normalize(anchors.detach(), dim=-1), FAST["top_k"])
    torch.testing.assert_close(las, expected)
    las_initial = fair.pseudo_label_scores(_config(text="initial"), tokens, b, anchors, text)
    torch.testing.assert_close(las_initial, scoring.las_logits(crops, crop_cls, img_cls, text.initial, FAST["top_k"]))
    # every crop kept (k = None) differs from the top-2
    las_all = fair.pseudo_label_scores(_config(top_k=None), tokens, b, anchors, text)
    assert not torch.allclose(las_all, las)


# --------------------------------------------------------------------------------------------------
# FairConfig checks


def test_fair_config_errors_name_the_parameter():
    with pytest.raises(ValueError, match="top_k"):
        fair.FairConfig(n_crops=4, top_k=5)
    with pytest.raises(ValueError, match="view='patches'"):
        fair.FairConfig(view="patches")
    with pytest.raises(ValueError, match="tuning='adapter'"):
        fair.FairConfig(tuning="adapter")
    with pytest.raises(ValueError, match="text='captions'"):
        fair.FairConfig(text="captions")
    with pytest.raises(ValueError, match="scorer='lazsl'"):
        fair.FairConfig(scorer="lazsl", text="anchors")
    with pytest.raises(ValueError, match="scorer='lazsl'"):
        fair.FairConfig(scorer="lazsl", text="descriptions", view="global")
    fair.FairConfig(scorer="lazsl", text="descriptions", top_k=None)  # the Table 7 row itself is fine
    with pytest.raises(ValueError, match="n_crops"):
        fair.FairConfig(n_crops=0)
    with pytest.raises(ValueError, match="epochs"):
        fair.FairConfig(epochs=0)
    with pytest.raises(ValueError, match="lr"):
        fair.FairConfig(lr=0.0)


def test_fair_config_from_profile_settings():
    config = config_from(fair.FairConfig, {"epochs": 2, "rrc_scale": [0.5, 1.0], "seed": 3}, "FAIR")
    assert config.epochs == 2 and config.seed == 3 and config.rrc_scale == (0.5, 1.0)
    assert config.settings()["version"] == fair.FAIR_VERSION
    with pytest.raises(ValueError, match="n_crop'"):
        config_from(fair.FairConfig, {"n_crop": 4}, "FAIR")
    with pytest.raises(ValueError, match="learning_rate"):
        config_from(fair.FairConfig, {"learning_rate": 1e-3}, "FAIR")


# --------------------------------------------------------------------------------------------------
# Table 10's variants and the rebuilt encoder


@pytest.mark.parametrize("tuning_method, tag", [("ln", "ln"), ("lora", "lora_"), ("kadaptation", "lokr_")])
def test_each_tuning_variant_trains_and_rebuilds(handle, text, batch, tuning_method, tag):
    weak, strong, indices, _ = batch
    config = _config(tuning=tuning_method)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        trainer = fair.Trainer(handle, text, config, steps=1)
    assert trainer.params and all(tag in name for name, p in trainer.visual.named_parameters() if p.requires_grad)
    before = {id(p): p.detach().clone() for p in trainer.params}
    frozen_before = {name: p.detach().clone() for name, p in trainer.visual.named_parameters() if not p.requires_grad}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        out = trainer.step(weak, strong, indices)
    assert torch.isfinite(torch.tensor([out["loss_st"], out["loss_reg"]])).all()
    assert any(not torch.equal(p, before[id(p)]) for p in trainer.params)  # the adapters moved
    for name, p in trainer.visual.named_parameters():
        if name in frozen_before:
            assert p.grad is None and not p.requires_grad, name
            # peft's LoRA on nn.MultiheadAttention merges W + dW for each forward and unmerges (W + dW) - dW
            # afterwards, so its frozen projections pick up float rounding; everything else stays bitwise
            if tuning_method == "lora":
                torch.testing.assert_close(p, frozen_before[name], atol=1e-6, rtol=0)
            else:
                assert torch.equal(p, frozen_before[name]), name

    state = tuning.trainable_state(trainer.visual)
    result = {**{f"state/{name}": value for name, value in state.items()}, "anchors": trainer.anchors.detach().cpu(),
              "history": torch.zeros(1, len(fair.TRAINING_LOG), dtype=torch.float64)}
    adapted = fair.Adapted(handle, result, config)
    assert adapted.state.keys() == state.keys()
    rebuilt = adapted.visual()
    assert not rebuilt.training
    pixels = weak[:4]
    trainer.visual.eval()
    with torch.no_grad():
        expected = trainer.visual(pixels)
        got = rebuilt(pixels)
        untrained = handle.model.visual(pixels)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert (got - untrained).abs().max() > 1e-5  # the training step did change the features
    logits = adapted.logits(F.normalize(got, dim=-1))
    assert logits.shape == (4, text.initial.shape[0])
    assert list(adapted.history.columns) == list(fair.TRAINING_LOG) + ["step"]


# --------------------------------------------------------------------------------------------------
# run: adapt through the feature cache


def test_run_is_cached(handle, small, text, tmp_path):
    dataset = small
    cache = feature_cache.FeatureCache(tmp_path / "cache")
    config = _config()
    first, key = fa.run(handle, dataset, text, config, cache=cache)
    assert (cache.hits, cache.misses) == (0, 1)
    second, key2 = fa.run(handle, dataset, text, config, cache=cache)
    assert (cache.hits, cache.misses) == (1, 1)
    assert key == key2 and key["text_side"] == text.fingerprint() and key["text"] == config.text and key["seed"] == config.seed
    assert torch.equal(first.anchors, second.anchors)
    assert len(first.state) == len(tuning.layernorm_parameters(handle.model.visual))  # the trained LNs survive
    assert first.state.keys() == second.state.keys()
    assert all(torch.equal(first.state[k], second.state[k]) for k in first.state)
    assert first.history.equals(second.history) and len(first.history) == 1
    pixels = torch.randn(2, 3, handle.image_size, handle.image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(first.visual()(pixels), second.visual()(pixels))
    # another config is another entry
    fa.run(handle, dataset, text, dataclasses.replace(config, seed=1), cache=cache)
    assert (cache.hits, cache.misses) == (1, 2)


# --------------------------------------------------------------------------------------------------
# the paper's conventions (Alg. 1, Sec. 6.1; DPA's code where the paper is silent)


def test_strong_view_is_timms_randaugment_at_dpas_strength(handle):
    """DPA's strong view: RandomResizedCrop (0.3, 1) bicubic, flip, timm's rand-m9-mstd0.5-inc1."""
    config = fair.FairConfig()
    assert (config.randaugment, config.interpolation, config.rrc_scale) == ("rand-m9-mstd0.5-inc1", "bicubic", (0.3, 1.0))
    _, strong = fair.transforms_for(handle.preprocess, handle.image_size, config)
    steps = strong.transforms
    rrc = next(t for t in steps if type(t).__name__ == "RandomResizedCrop")
    assert rrc.scale == (0.3, 1.0) and rrc.interpolation.value == "bicubic"
    assert any(type(t).__name__ == "RandomHorizontalFlip" for t in steps)
    (augment,) = [t for t in steps if isinstance(t, RandAugment)]
    assert augment.num_layers == 2 and len(augment.ops) == 15
    assert {op.magnitude for op in augment.ops} == {9} and {op.magnitude_std for op in augment.ops} == {0.5}
    assert "SolarizeIncreasing" in {op.name for op in augment.ops}  # inc1: the increasing op set
    _, plain = fair.transforms_for(handle.preprocess, handle.image_size, _config(randaugment=None))
    assert not any(isinstance(t, RandAugment) for t in plain.transforms)
    with pytest.raises(ValueError, match="randaugment='rand-x9'"):
        fair.FairConfig(randaugment="rand-x9")
    with pytest.raises(ValueError, match="interpolation='lanczos'"):
        fair.FairConfig(interpolation="lanczos")


def test_strong_view_is_seeded_and_leaves_python_and_numpy_rngs_alone(handle, dataset):
    _, strong = fair.transforms_for(handle.preprocess, handle.image_size, fair.FairConfig())
    image = dataset[0][0]
    random.seed(7)
    np.random.seed(7)
    before = (random.random(), np.random.rand())
    random.seed(7)
    np.random.seed(7)
    views = []
    for _ in range(2):
        with fair_views.seeded(3):
            views.append(torch.stack([strong(image) for _ in range(6)]))
    assert torch.equal(views[0], views[1])
    assert not torch.equal(views[0][0], views[0][1])  # each draw differs within a run
    assert (random.random(), np.random.rand()) == before


def test_posterize_at_zero_bits_is_a_black_image():
    """timm's PosterizeIncreasing reaches 0 bits at magnitude 10; Pillow >= 13 rejects 0 bits."""
    image = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5)
    assert np.asarray(fair_views._posterize(image, 0)).max() == 0
    assert np.array_equal(np.asarray(fair_views._posterize(image, 8)), np.asarray(image))
    assert np.asarray(fair_views._posterize(image, 1)).max() == 128


def test_wca_rows_weigh_descriptions_by_the_class_prompt(text):
    """Table 3's (★) block and Table 7's WCA row keep WCA's description weights v_j (eq. 9)."""
    b, (c, d), n = 3, text.initial.shape, FAST["n_crops"]
    tokens = _tokens(b, n, d, 16, seed=3)
    gen = torch.Generator().manual_seed(4)
    class_txt = F.normalize(torch.randn(c, d, generator=gen), dim=-1)
    prompted = fair.Text.from_descriptions(text.desc, text.mask, class_txt)
    assert prompted.fingerprint() != text.fingerprint()
    anchors = torch.nn.Parameter(text.initial.clone())
    crops = tokens["features"][b:].reshape(b, n, d)
    for row in ("WCA as PL (★)", "FAIR (w/ WCA PL)"):
        config = fair.FairConfig(**{**FAST, **fa.ROWS[row]})
        got = fair.pseudo_label_scores(config, tokens, b, anchors, prompted)
        expected = scoring.wca_logits(crops, tokens["features"][:b], text.desc, text.mask, class_txt,
                                      top_k=None, normalize=False)
        torch.testing.assert_close(got, expected)
        uniform = fair.pseudo_label_scores(config, tokens, b, anchors, text)
        assert not torch.allclose(got, uniform)


def test_adapt_scores_the_eval_set_after_each_epoch_without_changing_training(handle, small, text):
    config = _config(epochs=2)
    plain = fair.adapt(handle, small, text, config)
    scored = fair.adapt(handle, small, text, config, eval_set=small, eval_batch_size=4)
    assert len(plain["epoch_accuracy"]) == 0 and scored["epoch_accuracy"].shape == (2,)
    assert "eval_features" not in plain and scored["eval_features"].shape == (len(small), text.initial.shape[1])
    assert torch.equal(plain["anchors"], scored["anchors"]) and torch.equal(plain["history"], scored["history"])
    adapted = fair.Adapted(handle, scored, config)
    features = adapted.features(small, batch_size=4)
    torch.testing.assert_close(adapted.eval_features, features)  # the last epoch's features are the final model's
    final = adapted.logits(features)
    assert scored["epoch_accuracy"][-1].item() == pytest.approx(metrics.accuracy(final, small.labels))
    assert adapted.best_accuracy == scored["epoch_accuracy"].max().item()
    assert np.isnan(fair.Adapted(handle, plain, config).best_accuracy)
