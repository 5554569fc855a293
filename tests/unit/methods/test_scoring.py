"""lib.methods.scoring: every scoring function against a plain Python-loop implementation of its equation.

The references below are written from the equations (FAIR eqs. 1, 5, 7-14; LaZSL Sec. 3)
and from docs/official_code.md (CuPL, DCLIP, WCA and LaZSL bullets). They
use explicit for-loops over images, classes, crops and descriptions on Python floats (float64),
and share no code with ``lib.methods.scoring``. LaZSL's reference solves each (image, class) problem on
its own, reduced to the selected crops and the real descriptions, with POT's per-sample log-domain
Sinkhorn.

Inputs are random, seeded and L2-normalised; descriptions are ragged (1..6 per class, padded to
M = 6) and the padded rows hold large unnormalised garbage, so a mask bug shows in the logits.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import ot
import pytest
import torch

from lib.methods.scoring import clip_logits, cupl_logits, dclip_logits, las_logits, lazsl_logits, wca_logits

ATOL = 1e-10                        # plain float64 functions
OT_ATOL = 1e-6                      # functions that go through Sinkhorn
TIGHT = dict(n_iter=5000, tol=1e-13)
COUNTS = (1, 3, 6, 2, 4)            # real descriptions per class (C = 5, M = 6)
E4, E2 = math.exp(4), math.exp(2)   # WCA's official crop and text scales


# ---------------------------------------------------------------------------------------------
# Python-loop primitives (lists of floats only)
# ---------------------------------------------------------------------------------------------

def _dot(u, v):
    total = 0.0
    for x, y in zip(u, v, strict=True):
        total += x * y
    return total


def _norm(u):
    return math.sqrt(_dot(u, u))


def _cos(u, v):
    return _dot(u, v) / (_norm(u) * _norm(v))


def _softmax(xs):
    top = max(xs)
    ex = [math.exp(x - top) for x in xs]
    total = sum(ex)
    return [e / total for e in ex]


def _real(desc, mask, c):
    """The real (unmasked) description vectors of class c."""
    return [desc[c][j] for j in range(len(mask[c])) if mask[c][j]]


def _top_k(w, k):
    """Indices of the k largest entries of w (all when k is None)."""
    order = sorted(range(len(w)), key=lambda i: w[i], reverse=True)
    return set(order if k is None else order[:k])


def _lists(*tensors):
    return [None if t is None else t.tolist() for t in tensors]


def _t(rows):
    return torch.tensor(rows, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------
# Loop references, one per scoring function
# ---------------------------------------------------------------------------------------------

def ref_clip(img, txt):
    """eq. 1: psi_c = sim(f, t_c)."""
    img, txt = _lists(img, txt)
    out = []
    for f in img:
        row = []
        for t in txt:
            row.append(_dot(f, t))
        out.append(row)
    return out


def ref_cupl(img, desc, mask):
    """Official CuPL: psi_c = <f, normalise(mean_j Z_cj)> over the real descriptions."""
    img, desc, mask = _lists(img, desc, mask)
    out = []
    for f in img:
        row = []
        for c in range(len(desc)):
            real = _real(desc, mask, c)
            mean = [0.0] * len(f)
            for z in real:
                for k in range(len(f)):
                    mean[k] += z[k] / len(real)
            row.append(_dot(f, mean) / _norm(mean))
        out.append(row)
    return out


def ref_dclip(img, desc, mask):
    """eq. 5 / official DCLIP: psi_c = (1/M_c) sum_j sim(f, Z_cj) over the real descriptions."""
    img, desc, mask = _lists(img, desc, mask)
    out = []
    for f in img:
        row = []
        for c in range(len(desc)):
            real = _real(desc, mask, c)
            total = 0.0
            for z in real:
                total += _dot(f, z)
            row.append(total / len(real))
        out.append(row)
    return out


def ref_wca(crops, img, desc, mask, class_txt=None, *, crop_scale=E4, text_scale=E2, top_k=None,
            crop_cls=None, img_cls=None, normalize=True):
    """WCA, eqs. 7-10 and the official code; FAIR's top-k (eq. 13) and [CLS] weights (eq. 12)."""
    crops, img, desc, mask, class_txt, crop_cls, img_cls = _lists(
        crops, img, desc, mask, class_txt, crop_cls, img_cls)
    out = []
    for b in range(len(img)):
        n_crops = len(crops[b])
        if crop_cls is not None:   # eq. 12: cosine of [CLS] tokens, divided by their sum
            w = [_cos(img_cls[b], crop_cls[b][i]) for i in range(n_crops)]
            total = sum(w)
            w = [x / total for x in w]
        else:                      # eq. 8 with the official scale
            w = _softmax([crop_scale * _dot(img[b], crops[b][i]) for i in range(n_crops)])
        keep = _top_k(w, top_k)    # eq. 13, then renormalise the kept weights
        w = [w[i] if i in keep else 0.0 for i in range(n_crops)]
        total = sum(w)
        w = [x / total for x in w]
        row = []
        for c in range(len(desc)):
            real = _real(desc, mask, c)
            if class_txt is not None:   # eq. 9 with the official scale
                v = _softmax([text_scale * _dot(z, class_txt[c]) for z in real])
            else:
                v = [1.0 / len(real)] * len(real)
            if normalize:   # official: <normalise(sum_i w_i f_i), normalise(sum_j v_j Z_j)>
                image_side = [0.0] * len(img[b])
                for i in range(n_crops):
                    for k in range(len(image_side)):
                        image_side[k] += w[i] * crops[b][i][k]
                text_side = [0.0] * len(img[b])
                for j, z in enumerate(real):
                    for k in range(len(text_side)):
                        text_side[k] += v[j] * z[k]
                row.append(_cos(image_side, text_side))
            else:           # eq. 10: sum_i sum_j w_i v_j Theta_ij
                score = 0.0
                for i in range(n_crops):
                    for j, z in enumerate(real):
                        score += w[i] * v[j] * _dot(crops[b][i], z)
                row.append(score)
        out.append(row)
    return out


def ref_las(crops, crop_cls, img_cls, anchors, k=4, img=None):
    """FAIR LAS, eqs. 11-14: w~ sum-normalised (no softmax), top-k indicator, no renormalisation."""
    crops, crop_cls, img_cls, anchors, img = _lists(crops, crop_cls, img_cls, anchors, img)
    out = []
    for b in range(len(crops)):
        n_crops = len(crops[b])
        if crop_cls is not None:
            w = [_cos(img_cls[b], crop_cls[b][i]) for i in range(n_crops)]
        else:
            w = [_dot(img[b], crops[b][i]) for i in range(n_crops)]
        total = sum(w)
        w = [x / total for x in w]
        keep = _top_k(w, k)
        row = []
        for anchor in anchors:
            psi = 0.0
            for i in range(n_crops):
                if i in keep:
                    psi += w[i] * _dot(crops[b][i], anchor)   # Theta~_ic, eq. 11
            row.append(psi)
        out.append(row)
    return out


def ref_lazsl(crops, img, desc, mask, *, theta=0.8, eps=0.1, select=True, hybrid=True, ot_on=True):
    """LaZSL per (image, class): S = (1-theta) g + theta R (or R); a uniform over the crops with
    sim(crop, img) >= the mean over crops (or over all); b uniform over the real descriptions;
    T = Sinkhorn(a, b, 1 - S) on that reduced problem (or a b^T); score = sum T * S.
    Returns logits (B, C) and plans (B, C, N, M), zero outside the reduced problem."""
    crops, img, desc, mask = _lists(crops, img, desc, mask)
    n_crops, m_pad = len(crops[0]), len(mask[0])
    logits, plans = [], []
    for b in range(len(img)):
        sims = [_dot(crops[b][i], img[b]) for i in range(n_crops)]
        mean = sum(sims) / n_crops
        rows = [i for i in range(n_crops) if (sims[i] >= mean or not select)]
        logit_row, plan_row = [], []
        for c in range(len(desc)):
            cols = [j for j in range(m_pad) if mask[c][j]]
            S = np.zeros((len(rows), len(cols)))
            for r, i in enumerate(rows):
                for q, j in enumerate(cols):
                    region = _dot(crops[b][i], desc[c][j])
                    S[r, q] = (1 - theta) * _dot(img[b], desc[c][j]) + theta * region if hybrid else region
            a = np.full(len(rows), 1.0 / len(rows))
            bb = np.full(len(cols), 1.0 / len(cols))
            if ot_on:
                T = ot.sinkhorn(a, bb, 1.0 - S, reg=eps, method="sinkhorn_log", numItermax=5000, stopThr=1e-13)
            else:
                T = np.outer(a, bb)
            score = 0.0
            full = [[0.0] * m_pad for _ in range(n_crops)]
            for r, i in enumerate(rows):
                for q, j in enumerate(cols):
                    score += T[r, q] * S[r, q]
                    full[i][j] = float(T[r, q])
            logit_row.append(score)
            plan_row.append(full)
        logits.append(logit_row)
        plans.append(plan_row)
    return logits, plans


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------

def _unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def make_inputs(seed=0, B=3, N=7, d=8, h=10, counts=COUNTS, M=6):
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    C = len(counts)
    img = _unit(randn(B, d))
    crops = _unit(img[:, None, :] + 0.9 * randn(B, N, d))   # crops resemble their image
    mask = torch.zeros(C, M, dtype=torch.bool)
    for c, k in enumerate(counts):
        mask[c, :k] = True
    desc = torch.where(mask[..., None], _unit(randn(C, M, d)), 5.0 + 10.0 * randn(C, M, d))  # garbage pads
    real_mean = (desc * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    class_txt = _unit(real_mean + 0.3 * randn(C, d))
    anchors = _unit(randn(C, d))
    img_cls = 3.0 * randn(B, h)                              # pre-projection tokens: not normalised
    scale = 0.5 + torch.rand(B, N, 1, generator=g, dtype=torch.float64)
    crop_cls = (img_cls[:, None, :] + 2.0 * randn(B, N, h)) * scale
    return SimpleNamespace(img=img, crops=crops, desc=desc, mask=mask, class_txt=class_txt,
                           anchors=anchors, img_cls=img_cls, crop_cls=crop_cls, g=g)


@pytest.fixture
def x():
    return make_inputs()


def _close(got, ref, atol=ATOL):
    ref = ref if isinstance(ref, torch.Tensor) else _t(ref)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, ref, atol=atol, rtol=0)


def test_inputs_exercise_the_edge_cases(x):
    """Guard the fixture itself: ragged 1..M, garbage padding, selection that drops crops."""
    assert x.mask.sum(1).tolist() == list(COUNTS) and min(COUNTS) == 1 and max(COUNTS) == x.mask.shape[1]
    assert x.desc[~x.mask].norm(dim=-1).min() > 2          # padding is far from unit vectors
    sims = torch.einsum("bnd,bd->bn", x.crops, x.img)
    kept = (sims >= sims.mean(1, keepdim=True)).sum(1)
    assert (kept < x.crops.shape[1]).all() and (kept > 1).all()


# ---------------------------------------------------------------------------------------------
# Agreement with the loop references
# ---------------------------------------------------------------------------------------------

def test_clip_matches_loop(x):
    _close(clip_logits(x.img, x.anchors), ref_clip(x.img, x.anchors))


def test_cupl_matches_loop(x):
    _close(cupl_logits(x.img, x.desc, x.mask), ref_cupl(x.img, x.desc, x.mask))


def test_dclip_matches_loop(x):
    _close(dclip_logits(x.img, x.desc, x.mask), ref_dclip(x.img, x.desc, x.mask))


def test_cupl_and_dclip_differ_by_the_norm_of_the_mean(x):
    """The two rules are not the same function (a class with >1 description has a mean of norm < 1)."""
    cupl, dclip = cupl_logits(x.img, x.desc, x.mask), dclip_logits(x.img, x.desc, x.mask)
    torch.testing.assert_close(cupl[:, 0], dclip[:, 0], atol=ATOL, rtol=0)   # 1 description: equal
    assert (cupl[:, 1:] - dclip[:, 1:]).abs().max() > 1e-3


WCA_CASES = {
    "official": dict(cls_txt=True),
    "uniform_v": dict(cls_txt=False),
    "paper_double_sum": dict(cls_txt=True, normalize=False),
    "paper_scales": dict(cls_txt=True, normalize=False, crop_scale=1.0, text_scale=1.0),
    "top_k": dict(cls_txt=True, top_k=3),
    "top_k_double_sum": dict(cls_txt=True, top_k=3, normalize=False),
    "top_1": dict(cls_txt=False, top_k=1, normalize=False),
    "cls_weights": dict(cls_txt=True, cls=True),
    "cls_weights_double_sum": dict(cls_txt=False, cls=True, normalize=False),
    "cls_weights_top_k_double_sum": dict(cls_txt=True, cls=True, top_k=4, normalize=False),
}


def _wca_kwargs(x, case):
    case = dict(case)
    kw = dict(class_txt=x.class_txt if case.pop("cls_txt") else None)
    if case.pop("cls", False):
        kw.update(crop_cls=x.crop_cls, img_cls=x.img_cls)
    kw.update(case)
    return kw


@pytest.mark.parametrize("case", WCA_CASES.values(), ids=WCA_CASES.keys())
def test_wca_matches_loop(x, case):
    kw = _wca_kwargs(x, case)
    _close(wca_logits(x.crops, x.img, x.desc, x.mask, **kw), ref_wca(x.crops, x.img, x.desc, x.mask, **kw))


def test_wca_switches_matter(x):
    """Each switch changes the logits on these inputs, so the matching tests above are not vacuous."""
    base = wca_logits(x.crops, x.img, x.desc, x.mask, x.class_txt)
    for kw in (dict(class_txt=None), dict(normalize=False), dict(top_k=3, normalize=False),
               dict(crop_cls=x.crop_cls, img_cls=x.img_cls), dict(crop_scale=1.0), dict(text_scale=1.0)):
        other = wca_logits(x.crops, x.img, x.desc, x.mask, **{"class_txt": x.class_txt, **kw})
        assert (other - base).abs().max() > 1e-4, kw


LAS_CASES = {
    "cls_k4": dict(cls=True, k=4),
    "cls_all": dict(cls=True, k=None),
    "cls_k1": dict(cls=True, k=1),
    "cls_kN": dict(cls=True, k=7),
    "img_k3": dict(cls=False, k=3),
    "img_all": dict(cls=False, k=None),
}


@pytest.mark.parametrize("case", LAS_CASES.values(), ids=LAS_CASES.keys())
def test_las_matches_loop(x, case):
    if case["cls"]:
        got = las_logits(x.crops, x.crop_cls, x.img_cls, x.anchors, case["k"])
        ref = ref_las(x.crops, x.crop_cls, x.img_cls, x.anchors, case["k"])
    else:
        got = las_logits(x.crops, None, None, x.anchors, case["k"], img=x.img)
        ref = ref_las(x.crops, None, None, x.anchors, case["k"], img=x.img)
    _close(got, ref)


def test_las_default_k_is_4(x):
    _close(las_logits(x.crops, x.crop_cls, x.img_cls, x.anchors),
           ref_las(x.crops, x.crop_cls, x.img_cls, x.anchors, 4))


def test_las_is_not_renormalised_after_top_k(x):
    """eq. 14 as written: k = 1 gives w~_top * Theta~, not Theta~ of the top crop alone."""
    got = las_logits(x.crops, x.crop_cls, x.img_cls, x.anchors, 1)
    sim = torch.nn.functional.cosine_similarity(x.img_cls[:, None, :], x.crop_cls, dim=-1)
    w = sim / sim.sum(1, keepdim=True)
    top = w.argmax(1)
    assert (w.max(1).values < 0.5).all()
    for b in range(x.crops.shape[0]):
        theta = x.crops[b, top[b]] @ x.anchors.T
        torch.testing.assert_close(got[b], w[b, top[b]] * theta, atol=ATOL, rtol=0)
        assert (got[b] - theta).abs().max() > 1e-3


LAZSL_SWITCHES = [dict(select=s, hybrid=h, ot=o) for s in (True, False) for h in (True, False) for o in (True, False)]


def _switch_id(sw):
    return "-".join(f"{k}={int(v)}" for k, v in sw.items())


@pytest.mark.parametrize("sw", LAZSL_SWITCHES, ids=map(_switch_id, LAZSL_SWITCHES))
def test_lazsl_matches_loop_with_pot(x, sw):
    got, plans = lazsl_logits(x.crops, x.img, x.desc, x.mask, return_plans=True, **sw, **TIGHT)
    ref, ref_plans = ref_lazsl(x.crops, x.img, x.desc, x.mask, select=sw["select"], hybrid=sw["hybrid"],
                               ot_on=sw["ot"])
    atol = OT_ATOL if sw["ot"] else ATOL
    _close(got, ref, atol)
    assert plans.shape == (3, 5, 7, 6)
    _close(plans, ref_plans, atol)


@pytest.mark.parametrize("theta,eps", [(0.3, 0.1), (1.0, 0.1), (0.8, 0.05), (0.0, 0.2)])
def test_lazsl_other_theta_and_eps(x, theta, eps):
    got = lazsl_logits(x.crops, x.img, x.desc, x.mask, theta=theta, eps=eps, **TIGHT)
    ref, _ = ref_lazsl(x.crops, x.img, x.desc, x.mask, theta=theta, eps=eps)
    _close(got, ref, OT_ATOL)


def test_lazsl_theta_0_is_dclip(x):
    """theta = 0: every row of S is the global row g, so any plan with marginal b scores mean_j g_j."""
    got = lazsl_logits(x.crops, x.img, x.desc, x.mask, theta=0.0)
    _close(got, ref_dclip(x.img, x.desc, x.mask), 1e-9)


def test_lazsl_plans_are_exactly_zero_off_the_reduced_problem(x):
    _, plans = lazsl_logits(x.crops, x.img, x.desc, x.mask, return_plans=True)
    sims = torch.einsum("bnd,bd->bn", x.crops, x.img)
    unselected = sims < sims.mean(1, keepdim=True)                  # (B, N)
    assert (plans.permute(0, 2, 1, 3)[unselected] == 0).all()       # zero rows for dropped crops
    assert (plans.permute(0, 1, 3, 2)[:, ~x.mask] == 0).all()       # zero columns for padding
    # and the rest carries the marginals: uniform over kept crops and over real descriptions
    kept = (~unselected).sum(1).to(torch.float64)
    row = plans.sum(3)
    torch.testing.assert_close(row, (~unselected)[:, None, :] / kept[:, None, None] * torch.ones_like(row),
                               atol=1e-5, rtol=0)
    col = plans.sum(2)
    real = x.mask.to(torch.float64)
    torch.testing.assert_close(col, (real / real.sum(1, keepdim=True)).expand_as(col), atol=1e-5, rtol=0)


def test_lazsl_scores_the_plan_against_s(x):
    """With return_plans the logits are <T, S>_F with the returned T."""
    logits, plans = lazsl_logits(x.crops, x.img, x.desc, x.mask, return_plans=True)
    R = torch.einsum("bnd,cmd->bcnm", x.crops, x.desc)
    g = torch.einsum("bd,cmd->bcm", x.img, x.desc)[:, :, None, :]
    S = torch.where(x.mask[None, :, None, :], 0.2 * g + 0.8 * R, torch.zeros_like(R))
    _close(logits, (plans * S).sum((-1, -2)))


@pytest.mark.parametrize("settings,atol", [(TIGHT, 1e-10), ({}, OT_ATOL)], ids=["tight", "defaults"])
@pytest.mark.parametrize("chunk", [1, 50, 7 * 6 * 5 + 1])
def test_lazsl_chunk_changes_nothing(x, chunk, settings, atol):
    """chunk only splits the batch of images; with the default tolerance POT's shared stopping
    rule may stop a chunk at a different iteration (measured: ~6e-9), so there up to that tol."""
    full, full_plans = lazsl_logits(x.crops, x.img, x.desc, x.mask, return_plans=True, **settings)
    got, plans = lazsl_logits(x.crops, x.img, x.desc, x.mask, return_plans=True, chunk=chunk, **settings)
    _close(got, full, atol)
    _close(plans, full_plans, atol)


# ---------------------------------------------------------------------------------------------
# Invariances
# ---------------------------------------------------------------------------------------------

def _desc_methods(x, crops, img, desc, mask, class_txt, **lazsl_settings):
    """Every method that reads descriptions, in each of its modes."""
    out = {
        "cupl": cupl_logits(img, desc, mask),
        "dclip": dclip_logits(img, desc, mask),
        "wca_official": wca_logits(crops, img, desc, mask, class_txt),
        "wca_uniform": wca_logits(crops, img, desc, mask),
        "wca_double_sum_top_k": wca_logits(crops, img, desc, mask, class_txt, normalize=False, top_k=3),
    }
    for sw in LAZSL_SWITCHES:
        out["lazsl_" + _switch_id(sw)] = lazsl_logits(crops, img, desc, mask, **sw, **lazsl_settings)
    return out


def _pad_and_shuffle(x, extra=3, seed=1):
    """Append `extra` masked garbage descriptions to every class and shuffle each class's columns,
    so padding also sits between real descriptions."""
    g = torch.Generator().manual_seed(seed)
    C, M, d = x.desc.shape
    junk = -20.0 + 40.0 * torch.rand(C, extra, d, generator=g, dtype=torch.float64)
    desc = torch.cat([x.desc, junk], 1)
    mask = torch.cat([x.mask, torch.zeros(C, extra, dtype=torch.bool)], 1)
    perm = torch.stack([torch.randperm(M + extra, generator=g) for _ in range(C)])
    desc = torch.gather(desc, 1, perm[..., None].expand(-1, -1, d))
    mask = torch.gather(mask, 1, perm)
    assert not all(mask[c, :COUNTS[c]].all() for c in range(C))   # padding is not only at the end
    return desc, mask


@pytest.mark.parametrize("settings,lazsl_atol", [(TIGHT, 1e-9), ({}, 1e-6)], ids=["tight", "defaults"])
def test_padding_with_masked_descriptions_changes_nothing(x, settings, lazsl_atol):
    """Exact for the closed-form methods. For LaZSL the fixed point is the same, but POT's batched
    Sinkhorn starts from v = 0 on every column, padded ones included, so its first row update sees
    the padding and, stopped at the default tol, the logits move by ~1e-7 (converged: ~1e-14)."""
    base = _desc_methods(x, x.crops, x.img, x.desc, x.mask, x.class_txt, **settings)
    desc, mask = _pad_and_shuffle(x)
    padded = _desc_methods(x, x.crops, x.img, desc, mask, x.class_txt, **settings)
    for name in base:
        atol = lazsl_atol if name.endswith("ot=1") else 1e-12
        torch.testing.assert_close(padded[name], base[name], atol=atol, rtol=0, msg=name)


def _crop_methods(x, crops, crop_cls):
    out = {
        "wca_official": wca_logits(crops, x.img, x.desc, x.mask, x.class_txt),
        "wca_top_k_double_sum": wca_logits(crops, x.img, x.desc, x.mask, x.class_txt, top_k=3, normalize=False),
        "wca_cls_top_k": wca_logits(crops, x.img, x.desc, x.mask, crop_cls=crop_cls, img_cls=x.img_cls,
                                    top_k=4, normalize=False),
        "las_cls": las_logits(crops, crop_cls, x.img_cls, x.anchors, 4),
        "las_img": las_logits(crops, None, None, x.anchors, 3, img=x.img),
    }
    for sw in LAZSL_SWITCHES:
        out["lazsl_" + _switch_id(sw)] = lazsl_logits(crops, x.img, x.desc, x.mask, **sw)
    return out


def test_permuting_crops_changes_nothing(x):
    base = _crop_methods(x, x.crops, x.crop_cls)
    perm = torch.randperm(x.crops.shape[1], generator=x.g)
    assert not torch.equal(perm, torch.arange(len(perm)))
    permuted = _crop_methods(x, x.crops[:, perm], x.crop_cls[:, perm])
    for name in base:
        torch.testing.assert_close(permuted[name], base[name], atol=1e-9, rtol=0, msg=name)


def _class_methods(x, desc, mask, class_txt, anchors):
    out = {
        "clip": clip_logits(x.img, anchors),
        "las": las_logits(x.crops, x.crop_cls, x.img_cls, anchors, 4),
        "las_img": las_logits(x.crops, None, None, anchors, None, img=x.img),
    }
    out.update(_desc_methods(x, x.crops, x.img, desc, mask, class_txt))
    return out


def test_permuting_classes_permutes_the_logit_columns(x):
    base = _class_methods(x, x.desc, x.mask, x.class_txt, x.anchors)
    perm = torch.tensor([3, 0, 4, 2, 1])
    permuted = _class_methods(x, x.desc[perm], x.mask[perm], x.class_txt[perm], x.anchors[perm])
    for name in base:
        assert (base[name][:, perm] - base[name]).abs().max() > 1e-6, name   # the permutation is visible
        torch.testing.assert_close(permuted[name], base[name][:, perm], atol=1e-9, rtol=0, msg=name)


# ---------------------------------------------------------------------------------------------
# Clear errors
# ---------------------------------------------------------------------------------------------

def _error_cases(x):
    crops, img, desc, mask, ctx = x.crops, x.img, x.desc, x.mask, x.class_txt
    empty = mask.clone()
    empty[2] = False
    return {
        "cupl_desc_2d": (lambda: cupl_logits(img, desc[:, 0], mask), "desc"),
        "cupl_img_3d": (lambda: cupl_logits(crops, desc, mask), "img"),
        "dclip_mask_shape": (lambda: dclip_logits(img, desc, mask[:, :4]), "mask"),
        "dclip_mask_dtype": (lambda: dclip_logits(img, desc, mask.double()), "mask"),
        "dclip_desc_dim": (lambda: dclip_logits(img, desc[..., :5], mask), "desc"),
        "cupl_empty_class": (lambda: cupl_logits(img, desc, empty), r"\[2\]"),
        "dclip_empty_class": (lambda: dclip_logits(img, desc, empty), r"\[2\]"),
        "wca_empty_class": (lambda: wca_logits(crops, img, desc, empty, ctx), r"\[2\]"),
        "lazsl_empty_class": (lambda: lazsl_logits(crops, img, desc, empty), r"\[2\]"),
        "wca_crops_2d": (lambda: wca_logits(crops[:, 0], img, desc, mask), "crops"),
        "wca_class_txt_3d": (lambda: wca_logits(crops, img, desc, mask, ctx[None]), "class_txt"),
        "wca_top_k_0": (lambda: wca_logits(crops, img, desc, mask, top_k=0), "top_k"),
        "wca_top_k_gt_n": (lambda: wca_logits(crops, img, desc, mask, top_k=8), "top_k"),
        "wca_only_crop_cls": (lambda: wca_logits(crops, img, desc, mask, crop_cls=x.crop_cls), "img_cls"),
        "wca_only_img_cls": (lambda: wca_logits(crops, img, desc, mask, img_cls=x.img_cls), "crop_cls"),
        "wca_crop_cls_2d": (lambda: wca_logits(crops, img, desc, mask, crop_cls=x.crop_cls[:, 0],
                                               img_cls=x.img_cls), "crop_cls"),
        "las_anchors_3d": (lambda: las_logits(crops, x.crop_cls, x.img_cls, x.anchors[None]), "anchors"),
        "las_k_0": (lambda: las_logits(crops, x.crop_cls, x.img_cls, x.anchors, 0), "1..7"),
        "las_k_gt_n": (lambda: las_logits(crops, x.crop_cls, x.img_cls, x.anchors, 8), "1..7"),
        "las_only_crop_cls": (lambda: las_logits(crops, x.crop_cls, None, x.anchors), "img_cls"),
        "las_nothing": (lambda: las_logits(crops, None, None, x.anchors), "img"),
        "lazsl_theta_neg": (lambda: lazsl_logits(crops, img, desc, mask, theta=-0.1), "theta"),
        "lazsl_theta_gt_1": (lambda: lazsl_logits(crops, img, desc, mask, theta=1.01), "theta"),
        "lazsl_img_batch": (lambda: lazsl_logits(crops, img[:2], desc, mask), "img"),
        "lazsl_crops_dim": (lambda: lazsl_logits(crops[..., :5], img, desc, mask), "img|desc"),
        "lazsl_mask_shape": (lambda: lazsl_logits(crops, img, desc, mask.T), "mask"),
        # a batch of 1 must not broadcast silently; einsum's own errors name no argument
        "wca_img_batch_1": (lambda: wca_logits(crops, img[:1], desc, mask), "img"),
        "wca_img_dim": (lambda: wca_logits(crops, img[:, :5], desc, mask), "img"),
        "wca_class_txt_classes": (lambda: wca_logits(crops, img, desc, mask, x.class_txt[:4]), "class_txt"),
        "wca_crop_cls_crops": (lambda: wca_logits(crops, img, desc, mask, crop_cls=x.crop_cls[:, :6],
                                                  img_cls=x.img_cls), "crop_cls"),
        "las_img_batch_1": (lambda: las_logits(crops, None, None, x.anchors, img=img[:1]), "img"),
        "las_anchors_dim": (lambda: las_logits(crops, x.crop_cls, x.img_cls, x.anchors[:, :5]), "anchors"),
        "las_only_crop_cls_with_img": (lambda: las_logits(crops, x.crop_cls, None, x.anchors, img=img), "img_cls"),
        "lazsl_img_dim": (lambda: lazsl_logits(crops, img[:, :5], desc, mask), "img"),
    }


ERRORS = _error_cases(make_inputs())


@pytest.mark.parametrize("name", ERRORS.keys())
def test_clear_errors(x, name):
    call, match = _error_cases(x)[name]
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------------------------
# Demo-scale property: the plan matches parts to attributes
# ---------------------------------------------------------------------------------------------

def test_lazsl_plan_matches_each_description_to_its_crop():
    """Crops are near-orthogonal parts; description j of class c is (a noisy copy of) crop
    perm_c(j). With small eps, theta = 1 and no selection, each description's mass goes to its
    own crop, while the independent coupling (ot=False) spreads it evenly."""
    g = torch.Generator().manual_seed(3)
    N = M = 5
    d, C = 12, 3
    basis = torch.eye(d, dtype=torch.float64)[:N]
    crops = _unit(basis + 0.05 * torch.randn(2, N, d, generator=g, dtype=torch.float64))
    img = _unit(crops.sum(1))
    perms = [torch.randperm(N, generator=g) for _ in range(C)]
    desc = torch.stack([_unit(basis[p] + 0.05 * torch.randn(N, d, generator=g, dtype=torch.float64)) for p in perms])
    mask = torch.ones(C, M, dtype=torch.bool)
    logits, plans = lazsl_logits(crops, img, desc, mask, theta=1.0, eps=0.02, select=False, return_plans=True)
    for b in range(2):
        for c in range(C):
            col_mass = plans[b, c].sum(0)
            on_match = plans[b, c, perms[c], torch.arange(M)]
            assert (on_match / col_mass > 0.9).all(), (b, c, plans[b, c])
            assert torch.equal(plans[b, c].argmax(0), perms[c])
    indep = lazsl_logits(crops, img, desc, mask, theta=1.0, eps=0.02, select=False, ot=False)
    assert (logits > 0.9).all() and (indep < 0.4).all()      # matched parts score ~1, the mean ~1/N
