"""The CI gate's speed floors, set from the spread of repeated smoke runs on each CPU kind.

A speed row of benchmarks/baseline.json is an in-run ratio (harness/results/check.py). Its floor must let every
unchanged run pass and fail a 2x slowdown of the model it times. Both depend on how far the row moves between
unchanged runs on one machine kind, and in-run ratios also move between kinds (0.56-3.7x between an AMD EPYC and an
Intel Xeon on the same code). So each row keeps a value per CPU kind (`by_cpu`: the centre of that kind's recorded
runs, the geometric mean of the lowest and the highest, so the room is the same on both sides) and one factor, set
here from the recorded runs:

- lo, hi: the lowest and highest recorded run over its kind's centre, over every kind with at least MIN_RUNS runs.
- factor = lo x MARGIN, rounded down to 0.05 and at most CAP: an unchanged run as low as the lowest seen, and MARGIN
  lower again, passes.
- A row stays gated when a 2x slowdown fails it with room: factor >= FLOOR_MIN and factor > hi / 2 x ROOM (a run as
  fast as the fastest seen, slowed 2x, is still below the floor). Any other row cannot be made sharp: it leaves the
  gate and `tolerance_why` says why, with its numbers.

Records are compact results (each model's timings and the run's environment) in benchmarks/machines/speed-runs.json.

    .venv/bin/python benchmarks/gate_spread.py record RUN_DIR...   # add smoke runs' timings to the records
    .venv/bin/python benchmarks/gate_spread.py floors [--write]    # the table; --write puts it into baseline.json

tests/test_gate_floors.py replays every record against the committed baseline (each passes) and slows each gated
model's timings 2x on each backend (each of its rows fails).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

from harness.results.check import baseline_rows, cpu_kind
from harness.results.compare import load_results

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "benchmarks" / "machines" / "speed-runs.json"
BASELINE = ROOT / "benchmarks" / "baseline.json"
MIN_RUNS = 3  # a kind's spread counts from this many runs; a kind with fewer takes the others' factor
MARGIN = 0.9  # below the lowest unchanged run seen
# never tighter than this: earlier clean-clone CI runs with bursts of load from elsewhere measured unchanged rows down
# to 0.73x (offline), 0.63x (batch-1) and 0.68x (ELMo) of their baseline, and a kind with one record has no spread
CAP = 0.7
FLOOR_MIN = 0.55  # a 2x slowdown measures ~0.5x: a floor must stand clear of it
ROOM = 1.05  # the fastest recorded run slowed 2x must fall this far below the floor


def compact(results: dict) -> dict:
    """What the gate reads of a run: its environment, each model's scores and timings."""
    env = results.get("environment", {})
    return {"environment": {k: env.get(k) for k in ("cpu", "torch_threads", "git_commit", "torch")},
            "preset": results.get("preset"), "started": results.get("started"),
            "tasks": {t: {"models": {m: {k: v[k] for k in ("kind", "scores", "spread", "speed") if k in v}
                                     for m, v in task["models"].items()}}
                      for t, task in results["tasks"].items()}}


def load_records() -> list[dict]:
    return json.loads(RECORDS.read_text())["runs"] if RECORDS.is_file() else []


def speed_values(record: dict) -> dict[tuple, float]:
    return {(r["task"], r["model"], r["score"]): r["value"] for r in baseline_rows(record) if r["kind"] == "speed"}


def floors(records: list[dict]) -> pd.DataFrame:
    """One line per speed row: each kind's centre and runs, the spread, the factor, and whether it stays gated."""
    by_kind: dict[str, list[dict[tuple, float]]] = {}
    for record in records:
        by_kind.setdefault(cpu_kind(record["environment"]["cpu"]), []).append(speed_values(record))
    keys = sorted({k for runs in by_kind.values() for run in runs for k in run})
    lines = []
    for key in keys:
        centres, ratios, runs = {}, [], {}
        for kind, kind_runs in by_kind.items():
            values = [run[key] for run in kind_runs if key in run]
            if not values:
                continue
            centres[kind], runs[kind] = math.sqrt(min(values) * max(values)), len(values)
            if len(values) >= MIN_RUNS:
                ratios += [v / centres[kind] for v in values]
        lo, hi = (min(ratios), max(ratios)) if ratios else (math.nan, math.nan)
        factor = min(CAP, math.floor(lo * MARGIN * 20) / 20) if ratios else math.nan
        gated = bool(ratios) and factor >= FLOOR_MIN and factor > hi / 2 * ROOM
        why = (f"no kind has {MIN_RUNS} runs" if not ratios else
               f"unchanged runs {lo:.2f}-{hi:.2f}x of their kind's centre: a floor at {factor:.2f}x "
               + ("fails a 2x slowdown" if gated else
                  f"cannot both pass them and fail a 2x slowdown (needs > {hi / 2 * ROOM:.2f}x and >= {FLOOR_MIN:g}x)"))
        lines.append({"task": key[0], "model": key[1], "score": key[2], "by_cpu": centres, "runs": runs,
                      "lo": lo, "hi": hi, "factor": factor, "gated": gated, "why": why})
    return pd.DataFrame(lines)


def write(table: pd.DataFrame) -> None:
    """baseline.json's speed rows from the table: the gated ones with their values per kind, factor and reason; the
    others named in tolerance_why's `ungated`. Accuracy rows and the rest of the file stay as they are."""
    baseline = json.loads(BASELINE.read_text())
    made = cpu_kind(baseline["made_from"]["cpu"])
    rows = [r for r in baseline["rows"] if r["kind"] != "speed"]
    for line in table[table["gated"]].itertuples():
        by_cpu = {k: float(f"{v:.5g}") for k, v in sorted(line.by_cpu.items())}
        rows.append({"task": line.task, "model": line.model, "score": line.score, "kind": "speed",
                     "value": by_cpu.get(made, min(by_cpu.values())), "by_cpu": by_cpu, "tolerance": line.factor,
                     "why": f"{line.why} (runs: " + ", ".join(f"{k} {n}" for k, n in sorted(line.runs.items())) + ")"})
    why = baseline.get("tolerance_why", "")
    why = why if isinstance(why, dict) else {"accuracy": why}
    why["speed"] = (f"Each speed row's value per CPU kind (by_cpu) is the centre (geometric mean of the lowest and highest) "
                    "of that kind's recorded smoke runs (benchmarks/machines/speed-runs.json), its tolerance "
                    f"{MARGIN:g} x the lowest unchanged run over its kind's centre, rounded down to 0.05 and at most {CAP:g} "
                    "(earlier clean-clone CI runs with bursts of load measured unchanged rows down to 0.63-0.73x); a row "
                    f"stays gated only when that floor is >= {FLOOR_MIN:g} and above "
                    f"half the fastest run seen (x {ROOM:g}), so a 2x slowdown of its model fails it "
                    "(benchmarks/gate_spread.py; tests/test_gate_floors.py). A kind with fewer than "
                    f"{MIN_RUNS} runs takes the factor the others' spread sets.")
    why["ungated"] = {f"{r.task} {r.model}: {r.score}": r.why for r in table[~table["gated"]].itertuples()}
    baseline["tolerance_why"], baseline["rows"] = why, rows
    BASELINE.write_text(json.dumps(baseline, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="add smoke runs' timings to benchmarks/machines/speed-runs.json")
    rec.add_argument("runs", nargs="+", type=Path)
    fl = sub.add_parser("floors", help="each speed row's spread and floor")
    fl.add_argument("--write", action="store_true", help="write the speed rows into benchmarks/baseline.json")
    args = parser.parse_args(argv)
    if args.command == "record":
        records = load_records() + [compact(load_results(run)) for run in args.runs]
        about = json.dumps("compact smoke runs (environment, scores, timings) that set the gate's speed floors: "
                           "benchmarks/gate_spread.py")
        RECORDS.write_text(f'{{"about": {about}, "runs": [\n' + ",\n".join(json.dumps(r, sort_keys=True) for r in records)
                           + "\n]}\n")
        print(f"{RECORDS.relative_to(ROOT)}: {len(records)} runs")
        return 0
    table = floors(load_records())
    if table.empty:
        sys.exit(f"no records in {RECORDS}: record smoke runs first")
    show = table.assign(by_cpu=table["by_cpu"].map(lambda d: ", ".join(f"{k} {v:.3g}" for k, v in sorted(d.items()))),
                        runs=table["runs"].map(lambda d: ", ".join(f"{n}" for _, n in sorted(d.items()))))
    print(show.drop(columns=["why"]).to_markdown(index=False, floatfmt=".2f"))
    print(f"\n{int(table['gated'].sum())} of {len(table)} speed rows stay gated")
    if args.write:
        write(table)
        print(f"wrote {BASELINE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
