"""lib.report.plots: the sibling-group outlines of the confusion figure and the palette past ten classes."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # this test process only: no display needed

import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from lib.report import plots  # noqa: E402


def test_runs_of_group_ids():
    assert plots._runs(None) == []
    assert plots._runs(torch.tensor([0, 0, 0, 1, 1, 2])) == [(0, 3), (3, 2), (5, 1)]


def test_confusion_pair_outlines_each_sibling_block():
    names = [f"c{i}" for i in range(6)]
    matrices = {"before": np.eye(6) * 100, "after": np.eye(6) * 100}
    fig = plots.confusion_pair(matrices, names, groups=[0, 0, 0, 1, 1, 1])
    for ax in fig.axes:
        boxes = [(p.get_xy(), p.get_width()) for p in ax.patches if isinstance(p, Rectangle) and not p.get_fill()]
        assert boxes == [((0, 0), 3), ((3, 3), 3)]
    plain = plots.confusion_pair(matrices, names)
    assert not [p for ax in plain.axes for p in ax.patches if isinstance(p, Rectangle) and not p.get_fill()]


def test_embedding_panels_give_twelve_classes_twelve_colours():
    points = np.random.default_rng(0).normal(size=(24, 2))
    labels = torch.arange(24) % 12
    fig = plots.embedding_panels({"a": (points, labels, points[:12])}, [f"c{i}" for i in range(12)])
    stars = fig.axes[0].collections[-1].get_facecolors()
    assert len({tuple(np.round(c, 4)) for c in stars}) == 12
