"""`harness check`: a run against a committed baseline, the CI regression gate.

The baseline (benchmarks/baseline.json) holds one row per (task, model, score) of the run it was made
from (`harness check --update`), and tolerances:

- accuracy rows (every model's dev scores, ONNX/int8 ones included): the run may be at most
  `accuracy_points` below the baseline; a row the baseline run averaged over several seeds (`--seeds`)
  records their sd, and may fall at most `accuracy_sd_k` x sd instead. Runs are deterministic on one
  machine (tests/test_determinism.py), so an unchanged pipeline reproduces the baseline exactly;
  the tolerance only lets harmless changes that flip a prediction or two through;
- speed rows: ratios measured inside one run, never absolute times (compare.speed_rows with `gated`):
  each model's speed in units of a calibration workload of its own kind timed around it in the same
  process (harness/speed/calibrate.py: a fixed BiLSTM for recurrent models, a fixed BERT layer for
  transformers), so that one baseline holds on CPUs of another kind, and ONNX Runtime's speed-up over
  PyTorch for the same model. The run's ratio may not fall below the baseline's times
  `speed_ratio_factor`. Speed-ups over the teacher (an LSTM against a transformer) are not gated: that
  ratio is the CPU's shape as much as the code's (157x on an AMD EPYC, 60x on an Intel Xeon).
Every speed row names the CPU of the baseline and of the run, and timings taken while other
processes used a noticeable share of the machine (measure.conditions) are listed as warnings.
A row may carry its own `tolerance` (points, or factor), which wins over the global one. A speed row may also
carry `by_cpu`, its value on each CPU kind (`cpu_kind`): in-run ratios still differ between an AMD EPYC and an
Intel Xeon (0.56-3.7x on the same code), so a floor that one kind's unchanged run passes would let a 2x slowdown
through on the other. A run is judged against its own kind's value; on a kind the row has none for, against the
lowest. benchmarks/gate_spread.py makes the speed rows from repeated runs of each kind and sets each row's
tolerance from its spread (`tolerance_why` says how). A baseline row missing from the run is a regression too;
rows new in the run are listed, never fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from harness.core.errors import HarnessError
from harness.engine.cache import write_json_atomic
from harness.results.compare import load_results, score_rows, speed_rows
from harness.results.speed_tables import busy_timings
from harness.speed.measure import BUSY_SHARE

# 0.6: a 2x slower model fails (tests/test_gate.py); accuracy_sd_k: a row made from several seeds may fall k x their sd
DEFAULT_TOLERANCE = {"accuracy_points": 1.0, "speed_ratio_factor": 0.6, "accuracy_sd_k": 3.0}


def cpu_kind(cpu: str | None) -> str:
    """The kind of CPU a speed value holds for: `AMD EPYC` or `Intel Xeon` (the kinds seen), else the model name."""
    cpu = cpu or "unknown CPU"
    return next((kind for kind, word in (("AMD EPYC", "EPYC"), ("Intel Xeon", "Xeon")) if word in cpu), cpu)


def reference(row: dict, kind: str) -> tuple[float, str]:
    """A baseline row's value for a run on CPU kind `kind`, and what it is (`Intel Xeon value`; `baseline` for a row
    with one value; the lowest kind's for a kind the row has none for)."""
    by_cpu = row.get("by_cpu")
    if not by_cpu:
        return row["value"], "baseline"
    if kind in by_cpu:
        return by_cpu[kind], f"{kind} value"
    lowest = min(by_cpu, key=by_cpu.get)
    return by_cpu[lowest], f"lowest value, {lowest}'s: none for {kind}"


def ungated(baseline: dict) -> set[tuple[str, str, str]]:
    """The speed rows a baseline leaves out of the gate on purpose (tolerance_why's `ungated`: `task model: score`)."""
    why = baseline.get("tolerance_why")
    names = why.get("ungated", {}) if isinstance(why, dict) else {}
    return {(name.split(" ", 1)[0], *name.split(" ", 1)[1].split(": ", 1)) for name in names}


def seed_sd(results: dict, task: str, model: str, score: str) -> tuple[float, int] | None:
    """(sd, seeds) of a score a run averaged over several seeds (its model's `spread`); None otherwise."""
    split, _, metric = score.partition(" ")
    spread = ((results["tasks"][task]["models"][model].get("spread") or {}).get(split) or {}).get(metric)
    return (spread["sd"], spread["seeds"]) if spread and spread.get("sd") is not None else None


def baseline_rows(results: dict) -> list[dict]:
    """The rows a baseline keeps from a run: accuracy and in-run speed ratios."""
    rows = [{"task": t, "model": m, "score": s, "kind": "accuracy", "value": round(v, 4)}
            for (t, m, s), v in score_rows(results).items()]
    for row in rows:  # a mean over seeds keeps its spread: its tolerance is k x sd (judge)
        sd = seed_sd(results, row["task"], row["model"], row["score"])
        if sd is not None:
            row["sd"], row["seeds"] = round(sd[0], 4), sd[1]
    rows += [{"task": t, "model": m, "score": s, "kind": "speed", "value": float(f"{v:.5g}")}  # ELMo's batch-1 is ~0.001
             for (t, m, s), v in speed_rows(results, gated=True).items()]
    return rows


def make_baseline(results: dict, previous: dict | None = None) -> dict:
    """A baseline from `results`, keeping the tolerances (global and per row) of `previous`, and
    their written reasons (`tolerance_why`)."""
    previous = previous or {}
    before = {(r["task"], r["model"], r["score"]): r for r in previous.get("rows", [])}
    env = results.get("environment", {})
    left_out = ungated(previous)
    rows = [r for r in baseline_rows(results) if (r["task"], r["model"], r["score"]) not in left_out]
    for row in rows:  # a row keeps its tolerance and why, and its other CPU kinds' values (this run's kind gets its value)
        old = before.get((row["task"], row["model"], row["score"]), {})
        row.update({k: old[k] for k in ("tolerance", "why") if k in old})
        if "by_cpu" in old:
            row["by_cpu"] = {**old["by_cpu"], cpu_kind(env.get("cpu")): row["value"]}
    return {
        "about": "harness check baseline: accuracy may fall by at most accuracy_points; in-run speed ratios may not "
                 "fall below baseline x speed_ratio_factor. Refresh deliberately with `python -m harness check "
                 "--baseline THIS_FILE RUN_DIR --update`.",
        "made_from": {"suite": results.get("suite"), "preset": results.get("preset"), "set": results.get("set", {}),
                      "commit": env.get("git_commit"), "cpu": env.get("cpu"), "torch_threads": env.get("torch_threads")},
        "tolerance": {**DEFAULT_TOLERANCE, **previous.get("tolerance", {})},
        **({"tolerance_why": previous["tolerance_why"]} if "tolerance_why" in previous else {}),
        "rows": rows,
    }


def load_baseline(path: Path) -> dict:
    """The baseline at `path`, checked: a HarnessError names what is wrong (or how to make one)."""
    if not path.is_file():
        raise HarnessError(f"no baseline at {path}; make one from a run with "
                           f"`python -m harness check --baseline {path} RUN_DIR --update`")
    try:
        baseline = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise HarnessError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(baseline, dict) or not isinstance(baseline.get("rows"), list):
        raise HarnessError(f"{path}: not a baseline (expected an object with a rows list)")
    unknown = set(baseline.get("tolerance", {})) - set(DEFAULT_TOLERANCE)
    if unknown:
        raise HarnessError(f"{path}: unknown tolerance {', '.join(sorted(unknown))} (known: {', '.join(DEFAULT_TOLERANCE)})")
    for row in baseline["rows"]:
        if not {"task", "model", "score", "kind", "value"} <= set(row) or row["kind"] not in ("accuracy", "speed"):
            raise HarnessError(f"{path}: bad row {row!r} (needs task, model, score, kind accuracy|speed, value)")
    return baseline


def judge(row: dict, value: float | None, tolerance: dict, kind: str = "") -> tuple[str, str]:
    """(status, allowed) of one baseline row against the value of a run on CPU kind `kind`."""
    if row["kind"] == "accuracy" and "tolerance" not in row and "sd" in row:  # a mean over seeds: k x their sd
        points = tolerance["accuracy_sd_k"] * row["sd"]
        floor = row["value"] - points
        allowed = f">= {floor:.2f} (-{tolerance['accuracy_sd_k']:g} x sd {row['sd']:.2f} of {row['seeds']} seeds)"
    elif row["kind"] == "accuracy":
        points = row.get("tolerance", tolerance["accuracy_points"])
        floor, allowed = row["value"] - points, f">= {row['value'] - points:.2f} (-{points:g} points)"
    else:
        factor = row.get("tolerance", tolerance["speed_ratio_factor"])
        base, whose = reference(row, kind)
        floor, allowed = base * factor, f">= {base * factor:.3g} ({factor:g}x {whose})"
    if value is None:
        return "MISSING", allowed
    return ("ok" if value >= floor - 1e-9 else "REGRESSED"), allowed


def compare_to_baseline(results: dict, baseline: dict) -> pd.DataFrame:
    """One line per baseline row (and per row new in the run) with its status; speed rows name the
    CPU each side was measured on."""
    tolerance = {**DEFAULT_TOLERANCE, **baseline.get("tolerance", {})}
    run = {(r["task"], r["model"], r["score"]): r for r in baseline_rows(results)}
    made, here = baseline.get("made_from", {}).get("cpu"), results.get("environment", {}).get("cpu")
    cpus, kind = here if made == here else f"{made} / {here}", cpu_kind(here)

    def line(key: tuple, base: dict | None, value: float | None, allowed: str, status: str) -> dict:
        speed = (base or run[key])["kind"] == "speed"
        show = (lambda v: f"{v:.3g}") if speed else (lambda v: f"{v:.2f}")  # speeds span 0.001 to 100s
        ref = None if base is None else reference(base, kind)[0] if speed else base["value"]
        change = "–" if value is None or ref is None else (f"{value / ref:.2f}x" if speed and ref else f"{value - ref:+.2f}")
        return {"task": key[0], "model": key[1], "score": key[2], "baseline": "–" if ref is None else show(ref),
                "run": "–" if value is None else show(value), "change": change, "allowed": allowed,
                "cpu (baseline / run)": "" if not speed else f"{kind} / {here}" if kind in (base or {}).get("by_cpu", {})
                else cpus, "status": status}

    lines, seen = [], set()
    for row in baseline["rows"]:
        key = (row["task"], row["model"], row["score"])
        seen.add(key)
        value = run[key]["value"] if key in run else None
        status, allowed = judge(row, value, tolerance, kind)
        lines.append(line(key, row, value, allowed, status))
    seen |= ungated(baseline)  # rows left out of the gate on purpose are not new
    lines += [line(key, None, r["value"], "–", "new") for key, r in run.items() if key not in seen]
    return pd.DataFrame(lines)


def check(run: Path, baseline_path: Path) -> tuple[str, bool]:
    """The report of `run` against the baseline, and whether anything regressed."""
    baseline = load_baseline(baseline_path)
    results = load_results(run)
    table = compare_to_baseline(results, baseline)
    bad = table[table["status"].isin(["REGRESSED", "MISSING"])]
    made = baseline.get("made_from", {})
    env = results.get("environment", {})
    lines = [f"# harness check: {run} against {baseline_path}", ""]
    if (made.get("preset"), made.get("cpu"), made.get("torch_threads")) != (
            results.get("preset"), env.get("cpu"), env.get("torch_threads")):
        lines += [f"note: the baseline was made with preset {made.get('preset')} on {made.get('cpu')} "
                  f"({made.get('torch_threads')} threads); this run: preset {results.get('preset')} on {env.get('cpu')} "
                  f"({env.get('torch_threads')} threads)", ""]
    lines += [table.to_markdown(index=False, disable_numparse=True), ""]
    busy = busy_timings(results)
    if busy:
        lines += [f"warning: {len(busy)} timing(s) ran while other processes used more than {BUSY_SHARE:.0%} of the "
                  "machine; their speed rows may be low for that reason alone (rerun on a quiet machine):",
                  *[f"- {b}" for b in busy], ""]
    if len(bad):
        lines += ["## Regressed", "", bad.to_markdown(index=False, disable_numparse=True), ""]
    lines.append(f"check: {len(bad)} of {len(baseline['rows'])} baseline rows regressed" if len(bad)
                 else f"check: passed ({len(baseline['rows'])} baseline rows)")
    return "\n".join(lines), bool(len(bad))


def update_baseline(run: Path, baseline_path: Path) -> str:
    """Write the baseline from `run` (keeping the file's tolerances); returns a one-line summary."""
    previous = load_baseline(baseline_path) if baseline_path.exists() else None
    baseline = make_baseline(load_results(run), previous)
    write_json_atomic(baseline_path, baseline)
    return f"baseline: {baseline_path} ({len(baseline['rows'])} rows from {run})"
