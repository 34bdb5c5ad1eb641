"""Is a difference real? Spread over seeds, bootstrap intervals and paired tests, by scipy and statsmodels.

Every function takes a model's predictions as an (examples, seeds) array: one column per seed, rows
in the evaluation split's order, so a one-seed run is the one-column case of the same code.

- `spread`: mean and sample standard deviation (ddof 1) of a score over seeds.
- `interval`: a 95% percentile bootstrap interval of a score (its mean over seeds) over the evaluation
  examples, by `scipy.stats.bootstrap` (percentile, not BCa: BCa's jackknife costs one score per
  example, 20,000 on QQP's dev set).
- `paired_test`: two models on the same examples. Accuracy of one seed each: McNemar's exact test
  (`statsmodels.stats.contingency_tables.mcnemar`) on the examples where exactly one is right.
  Everything else (F1, MCC, correlations, several seeds): a paired permutation test
  (`scipy.stats.permutation_test`, `permutation_type="samples"`) that swaps the two models' predictions
  of an example (all its seeds at once) and recomputes the difference of the scores.

The resampling is seeded: the same inputs give the same interval and p-value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar

from harness.core.metrics import metric

ALPHA = 0.05  # a gap is called significant below this p-value
CONFIDENCE = 0.95
RESAMPLES = 1000  # bootstrap and permutation resamples (the p-value's resolution is 1/1001)


def as_columns(preds: np.ndarray | Sequence) -> np.ndarray:
    """Predictions as (examples, seeds): a 1-D array is one seed."""
    preds = np.asarray(preds)
    return preds[:, None] if preds.ndim == 1 else preds


def seed_mean_score(name: str, labels: np.ndarray, preds: np.ndarray) -> float:
    """A metric in percent, averaged over the seed columns of `preds`."""
    fn = metric(name).fn
    return float(np.mean([100.0 * fn(labels, preds[:, s]) for s in range(preds.shape[1])]))


def spread(values: Sequence[float]) -> dict[str, float | int | None]:
    """{"mean", "sd", "seeds"} of one score over seeds; sd is None with one seed."""
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else None,
            "seeds": len(values)}


def bootstrap(n: int, statistic, resamples: int, seed: int) -> tuple[float, float] | None:
    """The 95% percentile bootstrap interval of `statistic(example indices)` over n examples (scipy); None when
    there are under 2 examples or the statistic is undefined (NaN)."""
    if n < 2 or math.isnan(statistic(np.arange(n))):
        return None
    result = sps.bootstrap((np.arange(n),), statistic, n_resamples=resamples, confidence_level=CONFIDENCE,
                           method="percentile", vectorized=False, random_state=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return (float(low), float(high)) if not (math.isnan(low) or math.isnan(high)) else None


def interval(name: str, labels: Sequence, preds: np.ndarray | Sequence, resamples: int = RESAMPLES,
             seed: int = 0) -> tuple[float, float] | None:
    """The 95% bootstrap interval (percent) of metric `name` (its mean over seeds), resampling examples;
    None when the score is undefined (a constant prediction's correlation) or there are under 2 examples."""
    labels, preds = np.asarray(labels), as_columns(preds)
    return bootstrap(len(labels), lambda idx: seed_mean_score(name, labels[idx], preds[idx]), resamples, seed)


def paired_test(name: str, labels: Sequence, a: np.ndarray | Sequence, b: np.ndarray | Sequence,
                resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """Whether models `a` and `b` differ on metric `name`, on the same examples.

    Returns:
        {"difference": a - b in points (means over seeds), "p": the two-sided p-value, "test": which test,
        "significant": p < ALPHA}. Identical predictions give p = 1.
    """
    labels, a, b = np.asarray(labels), as_columns(a), as_columns(b)
    if a.shape != b.shape or len(labels) != len(a):
        raise ValueError(f"paired test needs the same examples and seeds: labels {len(labels)}, a {a.shape}, b {b.shape}")
    difference = seed_mean_score(name, labels, a) - seed_mean_score(name, labels, b)
    if math.isnan(difference):  # an undefined score (a constant prediction's correlation) on either side
        return {"difference": None, "p": None, "test": "none (a score is undefined)", "significant": False}
    if name == "accuracy" and a.shape[1] == 1:
        right_a, right_b = a[:, 0] == labels, b[:, 0] == labels
        table = [[int(np.sum(right_a & right_b)), int(np.sum(right_a & ~right_b))],
                 [int(np.sum(~right_a & right_b)), int(np.sum(~right_a & ~right_b))]]
        p, test = float(mcnemar(table, exact=True).pvalue), "McNemar exact"
    else:
        both = np.concatenate([a, b])  # row i: a's example i; row n + i: b's
        n = len(labels)

        def statistic(rows_a: np.ndarray, rows_b: np.ndarray) -> float:
            return seed_mean_score(name, labels, both[rows_a]) - seed_mean_score(name, labels, both[rows_b])

        result = sps.permutation_test((np.arange(n), np.arange(n, 2 * n)), statistic, permutation_type="samples",
                                      n_resamples=resamples, vectorized=False, alternative="two-sided",
                                      random_state=np.random.default_rng(seed))
        p, test = float(result.pvalue), f"paired permutation ({resamples} resamples)"
    return {"difference": difference, "p": p, "test": test, "significant": p < ALPHA}


def p_text(p: float, digits: int = 3) -> str:
    """`= 0.012` as a report prints a p-value; `< 1e-06` for 0, which is what results written before p kept
    its significant figures hold for a p under 5e-07 (rounded to 6 decimals)."""
    return "< 1e-06" if p == 0 else f"= {p:.{digits}g}"


ONE_RUN = "over the examples of one training run (not across seeds)"  # a paired test of models trained on one seed


def verdict(test: dict | None, across_seeds: bool = True) -> str:
    """How a report words a paired test: `p = 0.012, significant` or `p = 0.41, within noise` for a test across
    seeds; for a test of models trained on one seed (`across_seeds=False`: harness/results/significance.py decides),
    `p = 0.006 over the examples of one training run (not across seeds)`, never "significant" (it measures the
    examples' sampling, not training's variance), with `: within noise` added at p >= ALPHA."""
    if test is None or test.get("p") is None:
        return "untested"
    if not across_seeds:
        return f"p {p_text(test['p'], 2)} {ONE_RUN}" + ("" if test["significant"] else ": within noise")
    return f"p {p_text(test['p'], 2)}, " + ("significant" if test["significant"] else "within noise")


def difference_interval(name: str, labels: Sequence, a: np.ndarray | Sequence, b: np.ndarray | Sequence,
                        resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float] | None:
    """The 95% paired bootstrap interval (points) of score(b) - score(a) on the same examples (each the mean
    over its seed columns); None when a score is undefined."""
    labels, a, b = np.asarray(labels), as_columns(a), as_columns(b)

    def gap(idx: np.ndarray) -> float:
        return seed_mean_score(name, labels[idx], b[idx]) - seed_mean_score(name, labels[idx], a[idx])

    return bootstrap(len(labels), gap, resamples, seed)
