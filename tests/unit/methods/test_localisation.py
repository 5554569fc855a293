"""lib.methods.localisation and models.attention_maps: where a model looks, and how that is scored.

The attention maps are checked against an independent reference (the last block's own
``nn.MultiheadAttention`` asked for its weights with ``need_weights=True``), and the LoRA path
against a plain copy with the adapter merged by hand. Box geometry is checked against the handle's
own Resize + CenterCrop applied to a drawn rectangle. Random-weight demo model (32 px, 4x4 grid).
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from lib import models
from lib.methods import localisation
from lib.models import tuning

VIEW = 32


@pytest.fixture(scope="module")
def pixels(handle):
    gen = torch.Generator().manual_seed(0)
    return torch.randn(3, 3, handle.image_size, handle.image_size, generator=gen)


def _reference_maps(visual: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """[CLS]->patch attention of the last block from torch's own MHA (need_weights=True), renormalised."""
    visual = copy.deepcopy(visual).eval()
    attn = visual.transformer.resblocks[-1].attn
    assert isinstance(attn, torch.nn.MultiheadAttention)
    original = attn.forward
    captured = {}

    def forward(query, key, value, need_weights=False, attn_mask=None, **kwargs):
        out, weights = original(query, key, value, need_weights=True, attn_mask=attn_mask,
                                average_attn_weights=False)
        captured["w"] = weights
        return out, weights

    attn.forward = forward
    with torch.no_grad():
        visual(pixels)
    w = captured["w"]  # (B, heads, L+1, L+1)
    cls = w[:, :, 0, 1:]
    cls = cls / cls.sum(-1, keepdim=True)
    gh, gw = tuple(visual.grid_size)
    return cls.reshape(w.shape[0], w.shape[1], gh, gw)


def _check_distribution(maps: torch.Tensor, handle, batch: int) -> None:
    heads = handle.model.visual.transformer.resblocks[-1].attn.num_heads
    assert maps.shape == (batch, heads, *handle.patch_grid)
    assert (maps >= 0).all()
    torch.testing.assert_close(maps.flatten(2).sum(-1), torch.ones(batch, heads), atol=1e-5, rtol=0)


def _lora_copy(handle, randomise: str | None) -> torch.nn.Module:
    """A LoRA-prepared copy; ``randomise``: None (adapter at zero effect), "all" lora_B, or "last"
    (only the last block's attention in_proj adapter)."""
    visual = copy.deepcopy(handle.model.visual).eval()
    with torch.random.fork_rng():
        torch.manual_seed(1)
        tuning.prepare(visual, "lora")
    gen = torch.Generator().manual_seed(3)
    last = f"transformer.resblocks.{len(visual.transformer.resblocks) - 1}.attn.lora_B."
    with torch.no_grad():
        for name, p in visual.named_parameters():
            if "lora_B" in name and (randomise == "all" or (randomise == "last" and name.startswith(last))):
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    return visual


# --------------------------------------------------------------------------------------------------
# attention maps


def test_attention_maps_are_distributions_over_the_grid_and_match_torch_attention(handle, pixels):
    maps = models.attention_maps(handle, pixels)
    _check_distribution(maps, handle, len(pixels))
    torch.testing.assert_close(maps, _reference_maps(handle.model.visual, pixels), atol=1e-5, rtol=1e-4)
    assert maps.flatten(2).std(-1).max() > 0  # not uniform: the test above can tell maps apart


def test_attention_maps_of_a_layernorm_copy(handle, pixels):
    visual = copy.deepcopy(handle.model.visual).eval()
    tuning.prepare(visual, "ln")
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        ln = visual.transformer.resblocks[-1].ln_1
        ln.weight.mul_(1 + 0.5 * torch.randn(ln.weight.shape, generator=gen))
        ln.bias.add_(0.5 * torch.randn(ln.bias.shape, generator=gen))
    maps = models.attention_maps(handle, pixels, visual)
    _check_distribution(maps, handle, len(pixels))
    torch.testing.assert_close(maps, _reference_maps(visual, pixels), atol=1e-5, rtol=1e-4)
    assert (maps - models.attention_maps(handle, pixels)).abs().max() > 1e-3


def test_lora_copy_with_zero_adapter_gives_the_base_maps(handle, pixels):
    visual = _lora_copy(handle, None)
    maps = models.attention_maps(handle, pixels, visual)
    _check_distribution(maps, handle, len(pixels))
    torch.testing.assert_close(maps, models.attention_maps(handle, pixels), atol=1e-6, rtol=0)


def test_lora_copy_with_a_trained_adapter_changes_the_maps(handle, pixels):
    visual = _lora_copy(handle, "all")
    snapshot = copy.deepcopy(visual.state_dict())
    maps = models.attention_maps(handle, pixels, visual)
    _check_distribution(maps, handle, len(pixels))
    assert (maps - models.attention_maps(handle, pixels)).abs().max() > 1e-3
    # the merge happens on a copy: the adapted encoder keeps its unmerged adapter and base weights
    # (up to float rounding: peft's MultiheadAttention merges and unmerges around every forward)
    after = visual.state_dict()
    assert set(after) == set(snapshot)
    for k in snapshot:
        torch.testing.assert_close(after[k], snapshot[k], atol=1e-6, rtol=0, msg=k)


def test_lora_maps_equal_a_hand_merged_plain_copy(handle, pixels):
    """Only the last block's in_proj adapter is non-zero: merging it by hand (W + s B A) into a plain
    copy must give the same maps."""
    visual = _lora_copy(handle, "last")
    wrapper = visual.transformer.resblocks[-1].attn
    delta = wrapper.lora_B["default"].weight @ wrapper.lora_A["default"].weight * wrapper.scaling["default"]
    plain = copy.deepcopy(handle.model.visual).eval()
    with torch.no_grad():
        plain.transformer.resblocks[-1].attn.in_proj_weight.add_(delta)
    expected = _reference_maps(plain, pixels)
    maps = models.attention_maps(handle, pixels, visual)
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=1e-4)
    assert (expected - models.attention_maps(handle, pixels)).abs().max() > 1e-3


# --------------------------------------------------------------------------------------------------
# patch features and patch-to-text maps


@pytest.fixture(scope="module")
def tokens(handle, pixels):
    with torch.no_grad():
        return models.encoder_tokens(handle.model.visual, pixels)


def test_patch_features_are_unit_rows_in_the_joint_space(handle, tokens):
    feats = localisation.patch_features(handle.model.visual, tokens["patches"])
    b, length = tokens["patches"].shape[:2]
    assert length == handle.patch_grid[0] * handle.patch_grid[1]
    assert feats.shape == (b, length, handle.model.visual.output_dim)
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(b, length), atol=1e-5, rtol=0)
    # the same projection as the [CLS] token's: projecting [CLS] gives the global feature
    cls = localisation.patch_features(handle.model.visual, tokens["cls"][:, None])[:, 0]
    torch.testing.assert_close(cls, tokens["features"], atol=1e-5, rtol=1e-4)


def test_patch_features_without_proj_raise():
    with pytest.raises(NotImplementedError, match="proj"):
        localisation.patch_features(torch.nn.Linear(2, 2), torch.zeros(1, 4, 2))


def test_patch_text_maps_are_distributions_ordered_by_cosine(handle, tokens):
    feats = localisation.patch_features(handle.model.visual, tokens["patches"])
    gen = torch.Generator().manual_seed(5)
    text = torch.randn(len(feats), feats.shape[-1], generator=gen) * 3  # not unit: the map normalises it
    grid = handle.patch_grid
    maps = localisation.patch_text_maps(feats, text, grid, tau=0.1)
    assert maps.shape == (len(feats), *grid)
    assert (maps >= 0).all()
    torch.testing.assert_close(maps.flatten(1).sum(1), torch.ones(len(feats)), atol=1e-5, rtol=0)
    sims = torch.einsum("bld,bd->bl", feats, torch.nn.functional.normalize(text, dim=-1))
    # softmax over the patches of cos / tau: log-ratios are cosine differences / tau
    log_maps = maps.flatten(1).log()
    torch.testing.assert_close(log_maps - log_maps[:, :1], (sims - sims[:, :1]) / 0.1, atol=1e-4, rtol=1e-4)


def test_patch_text_maps_with_the_wrong_patch_count_raise_naming_the_grid(handle, tokens):
    feats = localisation.patch_features(handle.model.visual, tokens["patches"])
    with pytest.raises(ValueError, match="3x3"):
        localisation.patch_text_maps(feats, feats[:, 0], (3, 3))
    with pytest.raises(ValueError, match="4x4"):
        localisation.patch_text_maps(feats[:, :-1], feats[:, 0], (4, 4))


# --------------------------------------------------------------------------------------------------
# boxes


def test_a_box_over_the_whole_view_covers_every_patch():
    cov = localisation.box_coverage(torch.tensor([[0, 0, VIEW, VIEW]]), (4, 4), VIEW)
    assert cov.shape == (1, 4, 4)
    assert torch.equal(cov, torch.ones(1, 4, 4))


def test_a_box_exactly_on_one_patch_covers_only_that_patch():
    # row 1, column 2 of the 4x4 grid of 8 px patches: x in [16, 24], y in [8, 16]
    cov = localisation.box_coverage(torch.tensor([[16, 8, 24, 16]]), (4, 4), VIEW)
    expected = torch.zeros(1, 4, 4)
    expected[0, 1, 2] = 1
    torch.testing.assert_close(cov, expected, atol=1e-6, rtol=0)


def test_half_patch_overlaps_count_a_half():
    cov = localisation.box_coverage(torch.tensor([[12, 8, 20, 16], [0, 4, 8, 12]]), (4, 4), VIEW)
    expected = torch.zeros(2, 4, 4)
    expected[0, 1, 1] = expected[0, 1, 2] = 0.5  # half of each of two neighbours along x
    expected[1, 0, 0] = expected[1, 1, 0] = 0.5  # half of each of two neighbours along y
    torch.testing.assert_close(cov, expected, atol=1e-6, rtol=0)


def test_coverage_on_a_non_square_grid_sums_to_the_box_area_in_patches():
    box = torch.tensor([[3.0, 5.0, 29.0, 18.0]])
    grid = (2, 4)  # patches 16 px high, 8 px wide
    cov = localisation.box_coverage(box, grid, VIEW)
    area = (29 - 3) * (18 - 5)
    torch.testing.assert_close(cov.sum(), torch.tensor(area / (16 * 8)), atol=1e-5, rtol=0)
    # patch (row 1, column 0): y in [16, 32], x in [0, 8]; the box covers y in [16, 18], x in [3, 8]
    torch.testing.assert_close(cov[0, 1, 0], torch.tensor((2 / 16) * (5 / 8)), atol=1e-6, rtol=0)
    # patch (row 0, column 3): y in [0, 16], x in [24, 32]; the box covers y in [5, 16], x in [24, 29]
    torch.testing.assert_close(cov[0, 0, 3], torch.tensor((11 / 16) * (5 / 8)), atol=1e-6, rtol=0)


def test_box_in_view_halves_a_square_image():
    box = torch.tensor([[4, 10, 40, 62]])
    out = localisation.box_in_view(box, (64, 64), VIEW)
    torch.testing.assert_close(out, box.float() / 2, atol=1e-6, rtol=0)


def _preprocessed_box(handle, image_size: tuple[int, int], box: tuple[int, int, int, int]) -> torch.Tensor:
    """Draw ``box`` on a blank image, run the handle's Resize + CenterCrop, and read back the box."""
    resize_crop = [t for t in handle.preprocess.transforms if type(t).__name__ in ("Resize", "CenterCrop")]
    assert [type(t).__name__ for t in resize_crop] == ["Resize", "CenterCrop"]
    image = Image.new("L", image_size, 0)
    x0, y0, x1, y1 = box
    ImageDraw.Draw(image).rectangle([x0, y0, x1 - 1, y1 - 1], fill=255)  # pixels x0..x1-1
    for t in resize_crop:
        image = t(image)
    mask = torch.from_numpy(np.asarray(image, dtype=np.float32)) > 127
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)


@pytest.mark.parametrize("image_size, box", [
    ((96, 48), (30, 12, 60, 36)),  # wide: shorter side 48 -> 32, 32 px cropped from the width
    ((40, 80), (5, 30, 35, 70)),  # tall: the crop removes rows
    ((64, 64), (8, 16, 40, 48)),
])
def test_box_in_view_follows_the_preprocessing(handle, image_size, box):
    view = handle.image_size
    expected = _preprocessed_box(handle, image_size, box)
    out = localisation.box_in_view(torch.tensor([box]), image_size, view)[0]
    torch.testing.assert_close(out, expected, atol=1.0, rtol=0)


def test_box_in_view_clips_to_the_view():
    # a wide image: the left 16 px (in view scale) are cropped away, so a box there is clipped to 0
    out = localisation.box_in_view(torch.tensor([[0, 0, 20, 10]]), (64, 32), VIEW)
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0, 4.0, 10.0]]), atol=1e-6, rtol=0)
    assert (out >= 0).all() and (out <= VIEW).all()


# --------------------------------------------------------------------------------------------------
# localisation score


def test_a_map_inside_the_box_scores_one_and_a_uniform_map_scores_chance():
    boxes = torch.tensor([[0, 0, 16, 16], [8, 8, 30, 21]])
    cov = localisation.box_coverage(boxes, (4, 4), VIEW)
    inside = torch.zeros(2, 4, 4)
    inside[0, :2, :2] = 0.25  # the four patches the first box covers entirely
    inside[1, 1, 1] = 1.0  # patch x in [8, 16], y in [8, 16]: fully inside the second box
    uniform = torch.full((2, 4, 4), 1 / 16)
    torch.testing.assert_close(localisation.localisation_score(inside, cov), torch.ones(2), atol=1e-6, rtol=0)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    chance = area.float() / VIEW ** 2
    torch.testing.assert_close(localisation.chance_score(cov), chance, atol=1e-6, rtol=0)
    torch.testing.assert_close(localisation.localisation_score(uniform, cov), chance, atol=1e-6, rtol=0)
    outside = torch.zeros(2, 4, 4)
    outside[:, 3, 3] = 1.0  # x, y in [24, 32]: outside both boxes
    torch.testing.assert_close(localisation.localisation_score(outside, cov), torch.zeros(2), atol=1e-6, rtol=0)


def test_localisation_score_shape_mismatch_raises():
    cov = localisation.box_coverage(torch.tensor([[0, 0, 16, 16]]), (4, 4), VIEW)
    with pytest.raises(ValueError, match="differ in shape"):
        localisation.localisation_score(torch.full((1, 2, 8), 1 / 16), cov)
