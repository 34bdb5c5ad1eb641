"""The one place model outputs become predictions and predictions become scores.

Metrics are registered by name with their direction (lm-evaluation-harness' habit), so best-so-far
tracking (teacher checkpoints, early stopping) never needs a case per metric. Every score is in
percent, as GLUE reports them (MCC and correlations x 100 too).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef


@dataclass(frozen=True)
class Metric:
    """A score of predictions against labels.

    Attributes:
        fn: (labels, predictions) -> score in [-1, 1] or [0, 1]; reported x 100.
        higher_is_better: its direction, for best-so-far tracking.
    """

    fn: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool = True


def _correlation(fn: Callable) -> Callable[[np.ndarray, np.ndarray], float]:
    """A correlation that is NaN, not a warning, when either side is constant (it is undefined then)."""
    def corr(y: np.ndarray, p: np.ndarray) -> float:
        if len(y) < 2 or np.ptp(y) == 0 or np.ptp(p) == 0:
            return math.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(fn(y, p)[0])
    return corr


METRICS: dict[str, Metric] = {
    "accuracy": Metric(lambda y, p: accuracy_score(y, p)),
    "f1": Metric(lambda y, p: f1_score(y, p, pos_label=1, zero_division=0)),  # F1 of class 1, as GLUE
    "mcc": Metric(lambda y, p: matthews_corrcoef(y, p)),  # CoLA; 0 when predictions are constant
    "pearson": Metric(_correlation(pearsonr)),
    "spearman": Metric(_correlation(spearmanr)),
}


def register_metric(name: str, fn: Callable[[np.ndarray, np.ndarray], float], higher_is_better: bool = True) -> None:
    """Register a metric of a task plugin: `fn(labels, predictions)` in [-1, 1] or [0, 1] (reported x 100),
    and its direction, which checkpoint choice and early stopping follow.

    Raises:
        ValueError: the name is taken.
    """
    if name in METRICS:
        raise ValueError(f"metric {name!r} is registered twice")
    METRICS[name] = Metric(fn, higher_is_better)


def metric(name: str) -> Metric:
    """The metric registered as `name` (ValueError naming the known ones otherwise)."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r} (known: {', '.join(METRICS)})")
    return METRICS[name]


def predictions(outputs: np.ndarray) -> np.ndarray:
    """A model's (N, K) outputs as predictions: the class index (argmax) for K >= 2, the value itself
    for one output (a regression score, e.g. STS-B similarity)."""
    outputs = np.asarray(outputs)
    return outputs[:, 0].astype(np.float64) if outputs.shape[-1] == 1 else outputs.argmax(-1)


def score(metrics: Sequence[str], labels: Sequence[float], preds: Sequence[float]) -> dict[str, float]:
    """Scores in percent, e.g. {"accuracy": 90.71}; `preds` as `predictions` gives them."""
    y, p = np.asarray(labels), np.asarray(preds)
    return {name: 100.0 * float(metric(name).fn(y, p)) for name in metrics}


def score_outputs(metrics: Sequence[str], labels: Sequence[float], outputs: np.ndarray) -> dict[str, float]:
    """Scores of a model's raw (N, K) outputs."""
    return score(metrics, labels, predictions(outputs))


def worst(name: str) -> float:
    """The starting point of best-so-far tracking: below (or above) every value of the metric."""
    return -math.inf if metric(name).higher_is_better else math.inf


def improved(name: str, value: float, best: float) -> bool:
    """Whether `value` beats `best` in the metric's direction; an undefined (NaN) value never does, and
    any defined value beats an undefined best."""
    if math.isnan(value):
        return False
    if math.isnan(best):
        return True
    return value > best if metric(name).higher_is_better else value < best
