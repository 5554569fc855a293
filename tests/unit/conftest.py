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


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tiny forward passes: two threads spin against any other CPU job
    (0.5 s against 0.04 s per pass, measured) and as ``--threads 1`` in the benchmarks; restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
