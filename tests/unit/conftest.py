"""Fixtures shared by the unit tests."""
from __future__ import annotations

import pytest
import torch

from lib import models


@pytest.fixture(scope="module")
def handle():
    """The demo architecture with seeded random weights: fast to build, no pretraining. Test modules
    that need the pretrained demo model define their own ``handle``."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return models.load_model(models.DEMO_MODEL, None)
