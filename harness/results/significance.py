"""The statistics results.json keeps on each model, from its per-example predictions (harness/results/stats.py).

- `spread` (several seeds): {split: {metric: {mean, sd, seeds}}}; a model's `scores` are then the means.
- `intervals`: {split: {metric: [low, high]}}, the 95% bootstrap interval over the split's examples.
- `test`: {"against": the model it is paired with, split: {metric: {difference, p, test, significant}}}: a
  variant against its base, a distilled student against the label-only student of its family.
- `vs_best`: the same test of each student against the run's most accurate student on dev (harness/scoring.py):
  which students are within noise of the best (the report's "Which student?" section).
Intervals and tests cover dev and labelled test splits, not the selection split checkpoints were chosen on.

The report's tables show a score as `85.70 ± 0.29` (mean ± sd over seeds) and mark it `†` where its paired
test is significant (`decorate`, `MARK_NOTE`).
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
MARK_NOTE = (f"± is the standard deviation over seeds; {MARK} marks a score that differs from the model it is paired "
             f"with (a distilled student's label-only student, a variant's base) at p < {stats.ALPHA}, by the paired "
             "test on the same examples named in \"Is it noise?\"; a score without it is within noise of that model.")


def test_of(m: dict, split: str, metric: str) -> dict | None:
    """A model's paired test on one score, or None (untested: no pair, the selection split, an older run)."""
    return ((m.get("test") or {}).get(split) or {}).get(metric)


def decorate(text: str, m: dict, split: str, metric: str) -> str:
    """A formatted score with ` ± sd` when the model has several seeds and `†` when its test is significant."""
    sd = (((m.get("spread") or {}).get(split) or {}).get(metric) or {}).get("sd")
    test = test_of(m, split, metric)
    return text + (f" ± {sd:.2f}" if sd is not None else "") + (MARK if test and test.get("significant") else "")


def gap_words(m: dict, against: str, split: str, metric: str) -> str:
    """What a table says after a gap to `against`: ` †` when it is the model's significant paired test,
    ` (within noise)` when that test says noise, nothing when the pair was not tested."""
    test = test_of(m, split, metric)
    if test is None or (m.get("test") or {}).get("against") != against or test.get("p") is None:
        return ""
    return f" {MARK}" if test["significant"] else " (within noise)"


def any_tested(models: dict) -> bool:
    return any("test" in m or "spread" in m for m in models.values())


def section(models: dict) -> list[str]:
    """The report's "Is it noise?" subsection: each model's dev scores with their spread over seeds and
    95% interval, and its paired test where it has one (nothing when the run computed none)."""
    rows = []
    for name, m in models.items():
        if "intervals" not in m:
            continue
        for split, by_metric in m["intervals"].items():
            for metric, ci in by_metric.items():
                sd = ((m.get("spread") or {}).get(split) or {}).get(metric, {}).get("sd")
                test = ((m.get("test") or {}).get(split) or {}).get(metric)
                rows.append({
                    "model": name, "score": f"{split} {metric}",
                    "value": f"{m['scores'][split][metric]:.2f}"
                    + (f" ± {sd:.2f}" if sd is not None else ""),
                    "95% interval (bootstrap over examples)": "–" if ci is None else f"{ci[0]:.2f} – {ci[1]:.2f}",
                    "paired test": "–" if test is None else f"vs {m['test']['against']}: {test['difference']:+.2f}"
                    if test.get("difference") is not None else "–",
                    "p (test)": "–" if test is None or test.get("p") is None
                    else f"{stats.p_text(test['p']).removeprefix('= ')} ({test['test']})",
                    "verdict": "–" if test is None else stats.verdict(test)})
    if not rows:
        return []
    seeds = max((len(m.get("seeds", {})) for m in models.values()), default=0)
    return ["### Is it noise?", "",
            ("Scores are means over " + f"{seeds} seeds (± their standard deviation)" if seeds > 1 else
             "One seed per model") + "; intervals resample the evaluation examples; each distilled student is tested "
            "against its family's label-only student and each variant against its base, on the same examples "
            f"(significant: p < {stats.ALPHA}). A gap called within noise is not a gain.", "",
            pd.DataFrame(rows).rename(columns={"value": "value (mean ± sd over seeds)" if seeds > 1 else "value"})
            .to_markdown(index=False, disable_numparse=True), ""]
