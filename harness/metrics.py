"""The one place predictions become scores (scikit-learn)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score


def score(metrics: Sequence[str], labels: Sequence[int], preds: Sequence[int]) -> dict[str, float]:
    """Scores in percent, e.g. {"accuracy": 90.71}. `f1` is the F1 of class 1."""
    y, p = np.asarray(labels), np.asarray(preds)
    out = {}
    for name in metrics:
        if name == "accuracy":
            out[name] = 100.0 * float(accuracy_score(y, p))
        elif name == "f1":
            out[name] = 100.0 * float(f1_score(y, p, pos_label=1, zero_division=0))
        else:
            raise ValueError(f"unknown metric {name!r}")
    return out
