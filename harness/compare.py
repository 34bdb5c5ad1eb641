"""`harness compare RUN_A RUN_B ...`: the shared (task, model, score) rows of several runs side by
side, with each run's difference from the first."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from harness.errors import HarnessError
from harness.report import timing


def load_results(run: Path) -> dict:
    path = run / "results.json" if run.is_dir() else run
    if not path.is_file():
        raise HarnessError(f"{run}: no results.json (pass a run folder written by `harness run`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise HarnessError(f"{path}: not valid JSON ({e})") from None


def score_rows(results: dict) -> dict[tuple[str, str, str], float]:
    """{(task, model, "dev accuracy"): value, ...} plus batch-1 p50 latency where measured."""
    rows = {}
    for task, t in results["tasks"].items():
        for model, m in t["models"].items():
            for split, scores in m["scores"].items():
                for metric, value in scores.items():
                    rows[(task, model, f"{split} {metric}")] = value
            cpu = timing(m)
            if cpu is not None:
                rows[(task, model, "batch-1 p50 ms")] = cpu["interactive"]["p50_ms"]
    return rows


def compare(runs: list[Path], labels: list[str] | None = None) -> str:
    """Markdown table of the rows every run has; deltas are against the first run."""
    labels = labels or [r.name for r in runs]
    per_run = [score_rows(load_results(r)) for r in runs]
    shared = [k for k in per_run[0] if all(k in rows for rows in per_run[1:])]
    if not shared:
        raise HarnessError("the runs share no (task, model, score) rows")
    table = []
    for key in shared:
        row = {"task": key[0], "model": key[1], "score": key[2], labels[0]: f"{per_run[0][key]:.2f}"}
        for label, rows in zip(labels[1:], per_run[1:]):
            row[label] = f"{rows[key]:.2f}"
            row[f"Δ {label}"] = f"{rows[key] - per_run[0][key]:+.2f}"
        table.append(row)
    return pd.DataFrame(table).to_markdown(index=False, disable_numparse=True)
