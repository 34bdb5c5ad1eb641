"""The statistics results.json keeps on each model, from its per-example predictions (harness/results/stats.py).

- `spread` (several seeds): {split: {metric: {mean, sd, seeds}}}; a model's `scores` are then the means.
- `intervals`: {split: {metric: [low, high]}}, the 95% bootstrap interval over the split's examples.
- `test`: {"against": the model it is paired with, split: {metric: {difference, p, test, significant}}}: a
  variant against its base, a distilled student against the label-only student of its family.
- `vs_best`: the same test of each student against the run's most accurate student on dev (harness/scoring.py):
  which students are within noise of the best (the report's "Which student?" section).
Intervals and tests cover dev and labelled test splits, not the selection split checkpoints were chosen on.

The report's tables show a score as `85.70 ± 0.29` (mean ± sd over seeds) and mark it `†` where its paired
test is significant and covers seeds (`decorate`, `mark_note`).

What a test may claim (issue 45), decided in one place, `covers_seeds`, for every table, section and `compare`: a gap
is called significant (`†`, "significant", "beyond noise") only by a paired test whose two models each trained on at
least MIN_SEEDS seeds, the test over all of them. A test of models trained on one seed is over the examples of one
training run: it measures how the dev examples were sampled, not how training varies, and one retraining can move a
score by more than its interval (the same commit, seed and preset on another CPU moved QQP's distilled F1 by 15 points).
Such a test is shown for what it is (`stats.ONE_RUN`, "one training run") and claims no gain.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.results import stats


def spread(per_seed: dict[int, dict[str, dict[str, float]]]) -> dict:
    """{split: {metric: spread}} of {seed: scores} (every seed has the same splits and metrics)."""
    first = next(iter(per_seed.values()))
    return {split: {m: stats.spread([per_seed[s][split][m] for s in per_seed]) for m in metrics}
            for split, metrics in first.items()}


def mean_scores(per_seed: dict[int, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """A model's scores over seeds: each seed's when there is one, else the mean."""
    if len(per_seed) == 1:
        return next(iter(per_seed.values()))
    return {split: {m: v["mean"] for m, v in metrics.items()} for split, metrics in spread(per_seed).items()}


def intervals(metrics: tuple[str, ...], labels: dict[str, np.ndarray], preds: dict[str, np.ndarray],
              resamples: int, seed: int) -> dict:
    """{split: {metric: [low, high] or None}} for each split in `labels` (preds: (examples, seeds))."""
    out = {}
    for split, y in labels.items():
        out[split] = {}
        for m in metrics:
            ci = stats.interval(m, y, preds[split], resamples, seed)
            out[split][m] = None if ci is None else [round(ci[0], 4), round(ci[1], 4)]
    return out


def paired(metrics: tuple[str, ...], labels: dict[str, np.ndarray], a: dict[str, np.ndarray], b: dict[str, np.ndarray],
           against: str, resamples: int, seed: int) -> dict:
    """{"against": b's name, split: {metric: test}}: model a against model b on each split in `labels`."""
    out: dict = {"against": against}
    for split, y in labels.items():
        out[split] = {}
        for m in metrics:
            test = stats.paired_test(m, y, a[split], b[split], resamples, seed)
            # p keeps 6 significant figures, not 6 decimals: McNemar's on 20,000 pairs can be 1e-20, which round(p, 6) made 0
            out[split][m] = {k: (float(f"{v:.6g}") if k == "p" else round(v, 6)) if isinstance(v, float) else v
                             for k, v in test.items()}
    return out


MARK = "†"
MIN_SEEDS = 2  # a paired test covers training's variance when both models trained on at least this many seeds
ONE_RUN_TAG = "one training run"  # how a table cell names a test of models trained on one seed (stats.ONE_RUN in full)
MARK_NOTE = (f"± is the standard deviation over seeds; {MARK} marks a score that differs from the model it is paired "
             f"with (a distilled student's label-only student, a variant's base) at p < {stats.ALPHA}, by the paired "
             f"test on the same examples and seeds named in \"Is it noise?\", both models trained on at least {MIN_SEEDS} "
             "seeds; a score of such a pair without it is within noise of that model.")
ONE_RUN_NOTE = (f"A model trained on one seed gets no {MARK}: its paired test (\"Is it noise?\") is {stats.ONE_RUN}, "
                "which measures how the examples were sampled, not how training varies, and claims no gain; "
                f"{MARK} needs both models trained on at least {MIN_SEEDS} seeds.")


def covers_seeds(*seed_counts: int) -> bool:
    """The rule: whether a paired test of models trained on these numbers of seeds covers training's variance,
    so that a significant one may be called a gain (`†`, "significant", "beyond noise", `real` in `compare`):
    every model trained on at least MIN_SEEDS seeds. Otherwise the test is over the examples of one training run."""
    return bool(seed_counts) and min(seed_counts) >= MIN_SEEDS


def seed_count(m: dict | None) -> int:
    """How many seeds a model trained on: results.json keeps `seeds` (and `spread`) only for several; else one."""
    if len((m or {}).get("seeds") or {}) > 1:
        return len(m["seeds"])
    counts = [v.get("seeds", 1) for metrics in ((m or {}).get("spread") or {}).values() for v in metrics.values()]
    return max(counts, default=1)


def pair_covers_seeds(m: dict, models: dict | None = None, against: str | None = None) -> bool:
    """`covers_seeds` for a model's paired test: the model and the one it is tested against (`against`, by default
    its `test`'s, looked up in `models`, the task's models). Without that model at hand, the model's own count
    counts for both: `stats.paired_test` tests the same seeds on both sides."""
    against = against or (m.get("test") or {}).get("against")
    pair = (models or {}).get(against) if against else None
    return covers_seeds(seed_count(m), seed_count(pair if pair is not None else m))


def test_of(m: dict, split: str, metric: str) -> dict | None:
    """A model's paired test on one score, or None (untested: no pair, the selection split, an older run)."""
    return ((m.get("test") or {}).get(split) or {}).get(metric)


def tested(m: dict) -> bool:
    """Whether a model has a paired test with a p-value on any score."""
    return any(isinstance(t, dict) and t.get("p") is not None
               for split, by_metric in (m.get("test") or {}).items() if split != "against" for t in by_metric.values())


def gain(m: dict, split: str, metric: str, models: dict | None = None) -> bool:
    """Whether a score is a gap the report may call beyond noise: its paired test is significant and covers seeds."""
    test = test_of(m, split, metric)
    return bool(test and test.get("significant")) and pair_covers_seeds(m, models)


def decorate(text: str, m: dict, split: str, metric: str, models: dict | None = None) -> str:
    """A formatted score with ` ± sd` when the model has several seeds and `†` when its test is a `gain`
    (`models`: the task's, for the seeds of the model it is tested against)."""
    sd = (((m.get("spread") or {}).get(split) or {}).get(metric) or {}).get("sd")
    return text + (f" ± {sd:.2f}" if sd is not None else "") + (MARK if gain(m, split, metric, models) else "")


def gap_words(m: dict, against: str, split: str, metric: str, models: dict | None = None) -> str:
    """What a table says after a gap to `against`: ` †` when it is the model's significant paired test over seeds,
    ` (within noise)` when that test says noise; for a test of one training run ` (one training run, p = 0.006)` or
    ` (within noise, one training run)`; nothing when the pair was not tested."""
    test = test_of(m, split, metric)
    if test is None or (m.get("test") or {}).get("against") != against or test.get("p") is None:
        return ""
    if not pair_covers_seeds(m, models, against):
        return (f" ({ONE_RUN_TAG}, p {stats.p_text(test['p'], 2)})" if test["significant"]
                else f" (within noise, {ONE_RUN_TAG})")
    return f" {MARK}" if test["significant"] else " (within noise)"


def verdict(m: dict, split: str, metric: str, models: dict | None = None) -> str:
    """The "Is it noise?" verdict of a model's paired test on one score (stats.verdict, worded by the rule)."""
    return stats.verdict(test_of(m, split, metric), pair_covers_seeds(m, models))


def mark_note(*task_models: dict) -> list[str]:
    """The note under a table of decorated scores, as report lines: what ± and † mean, and, where a shown test is of
    one training run, that it gets no †. `task_models`: each task's models (the GLUE table shows every task's).
    Nothing when no model has a spread or a test."""
    if not any(any_tested(models) for models in task_models):
        return []
    covered = {pair_covers_seeds(m, models) for models in task_models for m in models.values() if tested(m)}
    if covered == {False}:
        return [ONE_RUN_NOTE, ""]
    return [MARK_NOTE + (" " + ONE_RUN_NOTE if False in covered else ""), ""]


def any_tested(models: dict) -> bool:
    return any("test" in m or "spread" in m for m in models.values())


def section(models: dict) -> list[str]:
    """The report's "Is it noise?" subsection: each model's dev scores with their spread over seeds and
    95% interval, and its paired test where it has one (nothing when the run computed none), worded by
    whether the test covers seeds (`pair_covers_seeds`)."""
    rows, one_run = [], set()  # whether each shown test is of one training run
    for name, m in models.items():
        if "intervals" not in m:
            continue
        for split, by_metric in m["intervals"].items():
            for metric, ci in by_metric.items():
                sd = ((m.get("spread") or {}).get(split) or {}).get(metric, {}).get("sd")
                test = test_of(m, split, metric)
                if test is not None and test.get("p") is not None:
                    one_run.add(not pair_covers_seeds(m, models))
                rows.append({
                    "model": name, "score": f"{split} {metric}",
                    "value": f"{m['scores'][split][metric]:.2f}"
                    + (f" ± {sd:.2f}" if sd is not None else ""),
                    "95% interval (bootstrap over examples)": "–" if ci is None else f"{ci[0]:.2f} – {ci[1]:.2f}",
                    "paired test": "–" if test is None else f"vs {m['test']['against']}: {test['difference']:+.2f}"
                    if test.get("difference") is not None else "–",
                    "p (test)": "–" if test is None or test.get("p") is None
                    else f"{stats.p_text(test['p']).removeprefix('= ')} ({test['test']})",
                    "verdict": "–" if test is None else verdict(m, split, metric, models)})
    if not rows:
        return []
    seeds = max((len(m.get("seeds", {})) for m in models.values()), default=0)
    seeded = (f" (significant: p < {stats.ALPHA}, by a test over every seed of both models)" if False in one_run
              else "")
    alone = (f" A test of models trained on one seed is {stats.ONE_RUN}: it measures how the examples were sampled, not "
             "how training varies (the same model trained again, e.g. on another CPU, can score outside its interval), so it "
             f"calls no gap significant; that needs both models trained on at least {MIN_SEEDS} seeds (`--seeds`)."
             ) if True in one_run else ""
    return ["### Is it noise?", "",
            ("Scores are means over " + f"{seeds} seeds (± their standard deviation)" if seeds > 1 else
             "One seed per model") + "; intervals resample the evaluation examples; each distilled student is tested "
            f"against its family's label-only student and each variant against its base, on the same examples{seeded}. "
            f"A gap called within noise is not a gain.{alone}", "",
            pd.DataFrame(rows).rename(columns={"value": "value (mean ± sd over seeds)" if seeds > 1 else "value"})
            .to_markdown(index=False, disable_numparse=True), ""]
