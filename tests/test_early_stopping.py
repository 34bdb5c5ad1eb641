"""Early stopping on dev: keeps the best weights and stops after `patience` checks without gain."""

from __future__ import annotations

import torch

from harness.engine.distill import EarlyStopping


def test_stops_after_patience_and_restores_best() -> None:
    """Scores 1, 3, 2, 2 with patience 2: stop on the fourth check, restore the weights of the second."""
    model = torch.nn.Linear(1, 1, bias=False)
    stopper = EarlyStopping(patience=2)
    stops = []
    for step, value in enumerate([1.0, 3.0, 2.0, 2.0]):
        model.weight.data.fill_(float(step))
        stops.append(stopper.update(value, model))
    assert stops == [False, False, False, True]
    assert stopper.best == 3.0
    stopper.restore(model)
    assert model.weight.item() == 1.0


def test_a_gain_resets_patience() -> None:
    """A new best after a bad check resets the count."""
    model = torch.nn.Linear(1, 1)
    stopper = EarlyStopping(patience=2)
    assert [stopper.update(v, model) for v in [1.0, 0.5, 2.0, 1.0]] == [False, False, False, False]
