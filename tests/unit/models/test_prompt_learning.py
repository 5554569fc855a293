"""lib.models.prompt_learning: CoOp context vectors in front of class names, on the cached demo model."""
from __future__ import annotations

import pytest
import torch

from lib import models
from lib.models import prompt_learning
from module_state import assert_unchanged, snapshot

CLASSNAMES = ["zero", "one", "seven", "traffic light"]  # a two-word name too: the suffix is not one token


@pytest.fixture(scope="module")
def handle():
    return models.load_model(models.DEMO_MODEL, "demo")


def test_ctx_from_the_init_phrase_reproduces_the_text_encoder(handle):
    learner = prompt_learning.PromptLearner(handle.model, handle.tokenizer, CLASSNAMES)
    assert learner.ctx.shape[0] == prompt_learning.N_CTX
    features = learner()
    expected = models.encode_texts(handle, [f"{prompt_learning.CTX_INIT} {name}." for name in CLASSNAMES])
    assert features.shape == expected.shape == (len(CLASSNAMES), handle.model.visual.output_dim)
    torch.testing.assert_close(features.detach(), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(features.norm(dim=-1), torch.ones(len(CLASSNAMES)), atol=1e-5, rtol=0)
    # the classes are told apart (the class name goes in after the context, not lost)
    assert (features @ features.T - torch.eye(len(CLASSNAMES))).max() < 1 - 1e-4


def test_another_init_phrase_reproduces_its_own_prompt(handle):
    learner = prompt_learning.PromptLearner(handle.model, handle.tokenizer, CLASSNAMES[:2], n_ctx=2,
                                            init="a digit")
    expected = models.encode_texts(handle, [f"a digit {name}." for name in CLASSNAMES[:2]])
    torch.testing.assert_close(learner().detach(), expected, atol=1e-5, rtol=0)


def test_gradient_reaches_only_the_context(handle):
    learner = prompt_learning.PromptLearner(handle.model, handle.tokenizer, CLASSNAMES)
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(len(CLASSNAMES), handle.model.visual.output_dim, generator=gen)
    loss = (learner() * target).sum()
    loss.backward()
    assert learner.ctx.grad is not None and learner.ctx.grad.abs().max() > 0
    assert [name for name, p in learner.named_parameters() if p.requires_grad] == ["ctx"]
    others = [name for name, p in learner.named_parameters() if name != "ctx" and p.grad is not None]
    assert not others, others
    with_grad = [name for name, p in handle.model.named_parameters() if p.grad is not None]
    assert not with_grad, with_grad


def test_an_optimizer_step_on_ctx_changes_the_prompts_and_not_the_model(handle):
    model_before = snapshot(handle.model)
    learner = prompt_learning.PromptLearner(handle.model, handle.tokenizer, CLASSNAMES)
    frozen_before = snapshot(learner)
    ctx_before = learner.ctx.detach().clone()
    features_before = learner().detach()
    optimizer = torch.optim.SGD([learner.ctx], lr=1.0)
    loss = -(learner()[:, 0]).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert not torch.equal(learner.ctx.detach(), ctx_before)
    assert (learner().detach() - features_before).abs().max() > 1e-4
    assert_unchanged(handle.model, model_before)
    # the learner's own frozen copies did not move either: only ctx did
    after = snapshot(learner)
    assert {k for k in after if not torch.equal(after[k], frozen_before[k])} == {"ctx"}


def test_the_learner_holds_copies_not_the_handle_s_layers(handle):
    flags = {name: p.requires_grad for name, p in handle.model.named_parameters()}
    model_before = snapshot(handle.model)
    learner = prompt_learning.PromptLearner(handle.model, handle.tokenizer, CLASSNAMES[:2])
    assert {name: p.requires_grad for name, p in handle.model.named_parameters()} == flags  # nothing frozen
    with torch.no_grad():
        for p in learner.parameters():
            p.add_(0.5)
    assert_unchanged(handle.model, model_before)


def test_init_with_the_wrong_token_count_raises_naming_n_ctx(handle):
    with pytest.raises(ValueError, match="n_ctx=3"):
        prompt_learning.PromptLearner(handle.model, handle.tokenizer, CLASSNAMES, n_ctx=3)
    with pytest.raises(ValueError, match="n_ctx=5"):
        prompt_learning.PromptLearner(handle.model, handle.tokenizer, CLASSNAMES, n_ctx=5, init="a photo of a")


def test_n_ctx_below_one_raises_naming_it(handle):
    with pytest.raises(ValueError, match="n_ctx=0"):
        prompt_learning.PromptLearner(handle.model, handle.tokenizer, CLASSNAMES, n_ctx=0, init=None)


def test_random_init_is_seeded(handle):
    def ctx(seed):
        return prompt_learning.PromptLearner(handle.model, handle.tokenizer, CLASSNAMES, n_ctx=16, init=None,
                                             seed=seed).ctx.detach()

    with torch.random.fork_rng():
        torch.manual_seed(123)
        a = ctx(0)
        torch.manual_seed(456)  # the global RNG does not matter
        b = ctx(0)
    c = ctx(1)
    width = handle.model.token_embedding.weight.shape[1]
    assert a.shape == (16, width)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert 0.5 * prompt_learning.CTX_STD < a.std() < 2 * prompt_learning.CTX_STD
    # and it still gives unit class features
    learner = prompt_learning.PromptLearner(handle.model, handle.tokenizer, CLASSNAMES, n_ctx=16, init=None)
    torch.testing.assert_close(learner().norm(dim=-1), torch.ones(len(CLASSNAMES)), atol=1e-5, rtol=0)


def test_empty_classnames_raise(handle):
    with pytest.raises(ValueError, match="class name"):
        prompt_learning.PromptLearner(handle.model, handle.tokenizer, [])
