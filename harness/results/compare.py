"""`harness compare RUN_A RUN_B ...`: the shared (task, model, score) rows of several runs side by
side, with each run's difference from the first.

Rows: every model's scores (ablation variants included, and ONNX/int8 dev scores), its batch-1
latency, and speed ratios measured inside one run (`speed_rows`: a model's speed-up over the
teacher, and ONNX Runtime's over PyTorch for the same model), which compare across machines where
absolute times do not; then the GLUE macro average of each row of the GLUE table (`glue_rows`: one
per role, or per model family where a role holds several models on a task; harness/results/glue_table.py),
named with the tasks it averages, so runs over different task sets show theirs as rows not in every
run. `harness check` gates on the score and speed rows. Last, how the runs differ: their commits and machines,
and per shared task the data sizes, checkpoint choice and settings that are not the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from harness.core.errors import HarnessError
from harness.core.metrics import METRICS
from harness.core.settings import _flatten
from harness.results import samples, significance, stats
from harness.results.glue_table import families, glue_tasks, tasks_phrase
from harness.results.speed_tables import speeds, timing
from harness.speed.calibrate import calibrated_speed

Row = tuple[str, str, str]  # (task, model, score)


def load_results(run: Path) -> dict:
    path = run / "results.json" if run.is_dir() else run
    if not path.is_file():
        raise HarnessError(f"{run}: no results.json (pass a run folder written by `harness run`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise HarnessError(f"{path}: not valid JSON ({e})") from None


def score_rows(results: dict) -> dict[Row, float]:
    """{(task, model, "dev accuracy"): value, ...}; scores of other backends as "dev accuracy (onnx-int8/cpu)"."""
    rows = {}
    for task, t in results["tasks"].items():
        for model, m in t["models"].items():
            for split, scores in m["scores"].items():
                for metric, value in scores.items():
                    rows[(task, model, f"{split} {metric}")] = value
            for s in speeds(m):
                for metric, value in (s.get("scores") or {}).items():
                    rows[(task, model, f"dev {metric} ({s['backend']}/{s['device']})")] = value
    return rows


def speed_rows(results: dict, gated: bool = False) -> dict[Row, float]:
    """Speed ratios measured inside the run (PyTorch fp32 on CPU unless named): every timed model's
    speed in units of its calibration workload (harness/speed/calibrate.py) in both regimes, its speed-up
    over the teacher (offline whole set, batch-1 p50), and each other CPU backend's offline speed-up
    over the same model on PyTorch.

    With `gated`, only the rows `harness check` keeps, those that hold across CPU kinds: calibrated
    speeds and backend ratios of one model. A speed-up over the teacher compares an LSTM with a
    transformer, and that ratio moves 2.6x between an AMD EPYC and an Intel Xeon (calibrate.py)."""
    rows: dict[Row, float | None] = {}
    for task, t in results["tasks"].items():
        teacher = timing(t["models"].get("teacher"))
        for model, m in t["models"].items():
            own = timing(m)
            if own is None:
                continue
            for regime, label in (("offline", "offline"), ("interactive", "batch-1")):
                if own[regime].get("calibration"):
                    workload = own[regime]["calibration"]["workload"]
                    rows[(task, model, f"{label} speed vs {workload} calibration")] = calibrated_speed(own[regime], regime)
            if teacher is not None and model != "teacher" and not gated:
                rows[(task, model, "offline speed-up vs teacher")] = ratio(teacher, own, "offline", "whole_set_s")
                rows[(task, model, "batch-1 speed-up vs teacher")] = ratio(teacher, own, "interactive", "p50_ms")
            for s in speeds(m):
                if s["device"] == "cpu" and s["backend"] != "torch":
                    rows[(task, model, f"offline speed-up {s['backend']} vs torch")] = ratio(own, s, "offline", "whole_set_s")
    return {k: v for k, v in rows.items() if v is not None}


def ratio(slow: dict, fast: dict, regime: str, stat: str) -> float | None:
    """How many times faster `fast` is than `slow` on one statistic (None when it is missing or 0)."""
    a, b = slow[regime].get(stat), fast[regime].get(stat)
    return a / b if a and b else None


def latency_rows(results: dict) -> dict[Row, float]:
    """Batch-1 p50 latency, PyTorch fp32 on CPU (absolute: compare it between runs on one machine only)."""
    rows = {}
    for task, t in results["tasks"].items():
        for model, m in t["models"].items():
            cpu = timing(m)
            if cpu is not None:
                rows[(task, model, "batch-1 p50 ms")] = cpu["interactive"]["p50_ms"]
    return rows


def glue_rows(results: dict) -> dict[Row, float]:
    """("GLUE", family, "average (6 tasks: cola, sst2, ...)") -> the GLUE macro average over the run's
    GLUE tasks of each GLUE-table row scored on all of them. `family` is the role (`distilled`) when
    the role has one row, as before roles could hold several models; else the role and its models
    (`distilled (alpha_soft)`)."""
    tasks = glue_tasks(results)
    score = f"average ({tasks_phrase(len(tasks))}: {', '.join(tasks)})"
    return {("GLUE", f.key, score): f.average for f in families(results) if f.average is not None}


def model_order(results: dict) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(task, model) -> sort key: tasks in run order; the teacher, students, ablation variants, then references."""
    rank = {"teacher": 0, "student": 1, "reference": 3}
    return {(task, model): (i, 2 if "variant" in m else rank.get(m.get("kind"), 4), j)
            for i, (task, t) in enumerate(results["tasks"].items()) for j, (model, m) in enumerate(t["models"].items())}


def all_rows(results: dict) -> dict[Row, float]:
    """Scores, latency and speed ratios, grouped by task and model; then the GLUE averages (`glue_rows`)."""
    merged = {**score_rows(results), **latency_rows(results), **speed_rows(results)}
    order = model_order(results)
    grouped = dict(sorted(merged.items(), key=lambda kv: order[kv[0][:2]]))  # stable: keeps each model's row order
    return {**grouped, **glue_rows(results)}


def examples_of(run: Path, task: str, split: str, kept: dict) -> pd.DataFrame | None:
    """A run's kept examples of one split (harness/results/samples.py), read once; None if it kept none."""
    folder = samples.task_folder(run if run.is_dir() else run.parent, task)
    if (folder, split) not in kept:
        path = folder / f"{samples.EXAMPLES}.parquet"
        frame = samples.read(folder, samples.EXAMPLES) if path.is_file() else None
        kept[(folder, split)] = None if frame is None else frame[frame["split"] == split].reset_index(drop=True)
    return kept[(folder, split)]


ONE_RUN_NOTE = (f"`{significance.ONE_RUN_TAG}`: an interval where a run trained the model on one seed resamples the "
                "examples of one training run, not seeds; it measures the examples' sampling, not training's variance, "
                "so it calls no delta real (harness/results/significance.py).")


def noise(run_a: Path, run_b: Path, key: Row, kept: dict) -> str:
    """` [low, high] within noise` (or `... real`): the 95% paired bootstrap interval of a score's difference,
    for a model both runs kept per-example predictions of on the same examples; empty otherwise. Where either run
    trained the model on one seed (significance.covers_seeds), the interval is one training run's and says so:
    ` [low, high] one training run` (or `... within noise, one training run`), never `real`."""
    task, model, score = key
    split, _, name = score.partition(" ")
    if name not in METRICS:  # latencies, speed ratios, other backends' scores
        return ""
    a, b = examples_of(run_a, task, split, kept), examples_of(run_b, task, split, kept)
    if a is None or b is None or not len(a) or not a.equals(b) or a["label"].isna().any():
        return ""
    folders = [samples.task_folder(r if r.is_dir() else r.parent, task) for r in (run_a, run_b)]
    if not all((f / f"{model}.parquet").is_file() for f in folders):
        return ""
    pa, pb = (samples.seed_columns(samples.read(f, model), split) for f in folders)
    ci = stats.difference_interval(name, a["label"].to_numpy(), pa, pb)
    if ci is None:
        return ""
    within = ci[0] <= 0 <= ci[1]
    if not significance.covers_seeds(pa.shape[1], pb.shape[1]):
        return f" [{ci[0]:+.2f}, {ci[1]:+.2f}] " + ("within noise, " if within else "") + significance.ONE_RUN_TAG
    return f" [{ci[0]:+.2f}, {ci[1]:+.2f}] " + ("within noise" if within else "real")


# What decides a task's scores; the timing settings (`measure`), the statistics and the suite's variant and per-task
# tables are left out (a task's own config already holds its per-task values).
SETTINGS = ("train_limit", "dev_limit", "seed", "seeds", "teacher", "augment", "selection", "transfer", "student", "students")
MOST_SETTINGS = 12  # differing settings named per task; the rest are counted


def task_settings(results: dict, task: str) -> dict[str, object]:
    """What a task's scores rest on: its data sizes, the split that chose checkpoints, and its settings (the task's
    own config, or the run's in results from before it was recorded per task)."""
    t = results["tasks"][task]
    cfg = t.get("config") or results.get("config", {})
    data = t.get("data", {})
    chosen = "selection split" if data.get("selection") else "dev"
    picked = {key: cfg[key] for key in SETTINGS if key in cfg}
    student = dict(picked.get("student") or {})  # the student plugin's own settings sit in `student.arch`; older
    arch = student.pop("arch", None)             # results hold them in `student` itself: one name for both
    if isinstance(arch, dict):
        picked["student"] = {**student, **arch}
    return {"data.train": data.get("train"), "data.dev": data.get("dev"), "checkpoints chosen on": chosen, **_flatten(picked)}


def shown(value: object) -> str:
    """A setting as the table writes it: strings bare (the empty one as `""`), `–` where a run did not record it, the
    rest as JSON."""
    return value if isinstance(value, str) and value else json.dumps(value, default=str)


def differences(results: list[dict], labels: list[str]) -> list[str]:
    """Each run's commit and machine, a warning where the machines differ, and per shared task the data and
    settings that differ: what a reader needs before taking a delta as the code's doing."""
    lines = []
    for label, r in zip(labels, results):
        env = r.get("environment", {})
        gpu = f", GPU {env['gpu']}" if env.get("gpu") else ""
        lines.append(f"- {label}: commit {str(env.get('git_commit', 'unknown'))[:12]}, {env.get('cpu', 'CPU not recorded')}{gpu}")
    if len({(r.get("environment", {}).get("cpu"), r.get("environment", {}).get("gpu")) for r in results}) > 1:
        lines.append("- The runs ran on different machines: their `batch-1 p50 ms` rows are times on different hardware; "
                     "the speed-up and calibrated-speed rows are ratios measured within each run and do compare.")
    tasks = [task for task in results[0]["tasks"] if all(task in r["tasks"] for r in results[1:])]
    for task in tasks:
        per_run = [task_settings(r, task) for r in results]
        keys = list(dict.fromkeys(k for settings in per_run for k in settings))
        values = [[shown(settings.get(k, "–")) for settings in per_run] for k in keys]
        differ = [(k, vs) for k, vs in zip(keys, values) if len(set(vs)) > 1]
        if not differ:
            lines.append(f"- {task}: the same data sizes, checkpoint choice and settings in every run")
            continue
        named = "; ".join(f"`{k}` {' / '.join(vs)}" for k, vs in differ[:MOST_SETTINGS])
        more = f"; and {len(differ) - MOST_SETTINGS} more" if len(differ) > MOST_SETTINGS else ""
        lines.append(f"- {task}: {len(differ)} setting(s) differ ({' / '.join(labels)}): {named}{more}")
    return ["", "", "How the runs differ (timing settings left out; `–`: not recorded, a run from before that setting):",
            *lines]


def compare(runs: list[Path], labels: list[str] | None = None) -> str:
    """Markdown table of the rows every run has, deltas against the first run (with a 95% interval and
    "within noise" where both runs kept predictions on the same examples); then the rows left out, and how the
    runs differ."""
    labels = labels or [r.name for r in runs]
    results = [load_results(r) for r in runs]
    per_run = [all_rows(r) for r in results]
    shared = [k for k in per_run[0] if all(k in rows for rows in per_run[1:])]
    if not shared:
        raise HarnessError("the runs share no (task, model, score) rows")
    table, kept = [], {}
    for key in shared:
        row = {"task": key[0], "model": key[1], "score": key[2], labels[0]: f"{per_run[0][key]:.2f}"}
        for run, label, rows in zip(runs[1:], labels[1:], per_run[1:]):
            row[label] = f"{rows[key]:.2f}"
            row[f"Δ {label}"] = f"{rows[key] - per_run[0][key]:+.2f}" + noise(runs[0], run, key, kept)
        table.append(row)
    text = pd.DataFrame(table).to_markdown(index=False, disable_numparse=True)
    if any(significance.ONE_RUN_TAG in cell for row in table for cell in row.values()):
        text += "\n\n" + ONE_RUN_NOTE
    left_out = list(dict.fromkeys(k for rows in per_run for k in rows if k not in set(shared)))
    if left_out:
        lines = [f"- {' '.join(key)}: only in {', '.join(lb for lb, rows in zip(labels, per_run) if key in rows)}"
                 for key in left_out]
        text += "\n\nNot in every run (left out above):\n" + "\n".join(lines)
    return text + "\n".join(differences(results, labels))
