"""harness/results/stats.py against direct calls of scipy and statsmodels on synthetic predictions."""

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import f1_score
from statsmodels.stats.contingency_tables import mcnemar

from harness.results import significance, stats


@pytest.fixture
def synthetic():
    """500 binary labels, a model right 85% of the time and one right 80%, independently."""
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 500)
    a = np.where(rng.random(500) < 0.85, labels, 1 - labels)
    b = np.where(rng.random(500) < 0.80, labels, 1 - labels)
    return labels, a, b


def test_mcnemar_matches_statsmodels(synthetic):
    labels, a, b = synthetic
    only_a = int(np.sum((a == labels) & (b != labels)))
    only_b = int(np.sum((a != labels) & (b == labels)))
    both = int(np.sum((a == labels) & (b == labels)))
    neither = len(labels) - both - only_a - only_b
    direct = mcnemar([[both, only_a], [only_b, neither]], exact=True).pvalue
    # and as binomtest: the discordant pairs split 50/50 under no difference
    assert direct == pytest.approx(sps.binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue)
    test = stats.paired_test("accuracy", labels, a, b)
    assert test["test"] == "McNemar exact"
    assert test["p"] == pytest.approx(direct, rel=1e-12)
    assert test["difference"] == pytest.approx(100 * (np.mean(a == labels) - np.mean(b == labels)))
    assert test["significant"] == (direct < 0.05)


def test_permutation_matches_scipy(synthetic):
    labels, a, b = synthetic

    def f1_gap(x, y):
        return 100 * (f1_score(labels, x) - f1_score(labels, y))

    direct = sps.permutation_test((a, b), f1_gap, permutation_type="samples", n_resamples=300, vectorized=False,
                                  random_state=np.random.default_rng(3))
    test = stats.paired_test("f1", labels, a, b, resamples=300, seed=3)
    assert test["test"] == "paired permutation (300 resamples)"
    assert test["p"] == pytest.approx(direct.pvalue, rel=1e-12)
    assert test["difference"] == pytest.approx(direct.statistic)


def test_bootstrap_matches_scipy(synthetic):
    labels, a, _ = synthetic
    direct = sps.bootstrap((labels, a), lambda y, p: 100 * np.mean(y == p), paired=True, n_resamples=400,
                           method="percentile", vectorized=False, random_state=np.random.default_rng(5))
    low, high = stats.interval("accuracy", labels, a, resamples=400, seed=5)
    assert (low, high) == pytest.approx(tuple(direct.confidence_interval), rel=1e-12)
    assert low < 100 * np.mean(a == labels) < high


def test_identical_predictions_are_within_noise(synthetic):
    labels, a, _ = synthetic
    for name in ("accuracy", "f1", "mcc"):
        test = stats.paired_test(name, labels, a, a.copy(), resamples=200)
        assert test["p"] == 1.0 and test["difference"] == 0.0 and not test["significant"]
        assert stats.verdict(test) == "p = 1, within noise"


def test_a_real_gap_is_significant():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 2000)
    good = np.where(rng.random(2000) < 0.95, labels, 1 - labels)
    poor = np.where(rng.random(2000) < 0.70, labels, 1 - labels)
    assert stats.paired_test("accuracy", labels, good, poor)["significant"]
    assert stats.paired_test("mcc", labels, good, poor, resamples=200)["p"] < 0.01


def test_several_seeds_permute_whole_examples(synthetic):
    """With seeds as columns, an example's predictions of every seed move together: the test of a model
    against itself under other seed order is not significant, and its statistic is the mean over seeds."""
    labels, a, b = synthetic
    rng = np.random.default_rng(2)
    flip = lambda p: np.where(rng.random(len(p)) < 0.05, 1 - p, p)  # noqa: E731 (another seed: 5% of predictions differ)
    seeds_a, seeds_b = np.stack([a, flip(a), flip(a)], 1), np.stack([b, flip(b), flip(b)], 1)
    test = stats.paired_test("accuracy", labels, seeds_a, seeds_b, resamples=200)
    assert test["test"].startswith("paired permutation")
    means = [100 * np.mean(seeds_a[:, s] == labels) - 100 * np.mean(seeds_b[:, s] == labels) for s in range(3)]
    assert test["difference"] == pytest.approx(np.mean(means))


def test_spread():
    assert stats.spread([80.0]) == {"mean": 80.0, "sd": None, "seeds": 1}
    out = stats.spread([80.0, 82.0, 84.0])
    assert out["mean"] == 82.0 and out["sd"] == pytest.approx(2.0) and out["seeds"] == 3


def test_undefined_score_has_no_interval():
    labels = np.array([0.1, 0.5, 0.9, 0.3])
    assert stats.interval("pearson", labels, np.full(4, 0.5)) is None
    assert stats.paired_test("pearson", labels, np.full(4, 0.5), np.full(4, 0.5), resamples=50)["p"] is None


def test_mismatched_examples_are_refused(synthetic):
    labels, a, b = synthetic
    with pytest.raises(ValueError, match="same examples"):
        stats.paired_test("accuracy", labels, a, b[:-1])


def test_difference_interval_matches_scipy(synthetic):
    labels, a, b = synthetic
    direct = sps.bootstrap((labels, a, b), lambda y, x, z: 100 * (np.mean(z == y) - np.mean(x == y)), paired=True,
                           n_resamples=300, method="percentile", vectorized=False, random_state=np.random.default_rng(4))
    assert stats.difference_interval("accuracy", labels, a, b, resamples=300, seed=4) == pytest.approx(
        tuple(direct.confidence_interval), rel=1e-12)


def test_a_tiny_p_is_kept_not_rounded_to_zero():
    """McNemar's p on thousands of pairs can be far below 1e-6; results and reports must not say p = 0."""
    labels = np.zeros(20_000, dtype=int)
    a, b = labels.copy(), labels.copy()
    b[:500] = 1  # b wrong on 500 examples a gets right
    test = significance.paired(("accuracy",), {"dev": labels}, {"dev": a}, {"dev": b}, "b", 100, 0)["dev"]["accuracy"]
    assert 0 < test["p"] < 1e-100 and test["difference"] == 2.5
    assert stats.verdict(test).startswith("p = ") and "e-" in stats.verdict(test)


def test_a_p_rounded_to_zero_by_older_results_reads_as_below_1e6():
    assert stats.verdict({"p": 0.0, "significant": True}) == "p < 1e-06, significant"
    assert stats.verdict({"p": 0.0123, "significant": True}) == "p = 0.012, significant"
