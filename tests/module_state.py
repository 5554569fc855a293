"""Snapshots of a module's state, to check that training touched only what it should."""
from __future__ import annotations

import torch


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_unchanged(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    state = module.state_dict()
    assert set(state) == set(before)
    changed = [k for k in before if not torch.equal(state[k], before[k])]
    assert not changed, f"changed: {changed[:5]}"
