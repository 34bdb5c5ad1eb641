"""The committed gate (benchmarks/baseline.json) against the recorded smoke runs of each CPU kind
(benchmarks/machines/speed-runs.json): each unchanged run passes every speed row, and a 2x slowdown of any gated
model, on any of its backends, fails every row that times that backend. A slowdown is the run's own timings of that
model and backend doubled (every pass, every batch-1 call), which is what a model doing its work twice records; the
calibration workload around it is left as it was (tests/test_gate.py makes one such slowdown for real).

Each kept floor says why it is what it is (its `why`), and each speed row left out of the gate is named with its
reason in tolerance_why's `ungated` (benchmarks/gate_spread.py sets both from the records' spread)."""

from __future__ import annotations

import copy
import json

import pytest

from harness.data.tasks import REPO_ROOT
from harness.results import check

BASELINE = check.load_baseline(REPO_ROOT / "benchmarks" / "baseline.json")
RECORDS = json.loads((REPO_ROOT / "benchmarks" / "machines" / "speed-runs.json").read_text())["runs"]
GATED = [r for r in BASELINE["rows"] if r["kind"] == "speed"]
TOLERANCE = {**check.DEFAULT_TOLERANCE, **BASELINE.get("tolerance", {})}


def backend_of(score: str) -> str:
    """The backend whose timing a speed row reads: `offline speed-up onnx-int8 vs torch` -> onnx-int8; the
    calibrated speeds read PyTorch's."""
    return score.split()[2] if score.startswith("offline speed-up ") else "torch"


def slowed(record: dict, task: str, model: str, backend: str, factor: float = 2.0) -> dict:
    """The record with one model's timings on one CPU backend `factor` times slower."""
    out = copy.deepcopy(record)
    for timing in out["tasks"][task]["models"][model]["speed"]:
        if timing["backend"] == backend and timing["device"] == "cpu":
            for regime in ("offline", "interactive"):
                stats = timing[regime]
                for key in ("whole_set_s", "p50_ms", "p90_ms", "p99_ms", "mean_ms"):
                    if key in stats:
                        stats[key] *= factor
                for key in ("pass_s", "pass_p50_ms"):
                    if key in stats:
                        stats[key] = [v * factor for v in stats[key]]
    return out


def verdicts(record: dict) -> dict[tuple[str, str, str], str]:
    run = {(r["task"], r["model"], r["score"]): r["value"] for r in check.baseline_rows(record)}
    kind = check.cpu_kind(record["environment"]["cpu"])
    return {(r["task"], r["model"], r["score"]): check.judge(r, run.get((r["task"], r["model"], r["score"])),
                                                             TOLERANCE, kind)[0] for r in GATED}


def name(record: dict) -> str:
    return f"{check.cpu_kind(record['environment']['cpu'])} {record['environment']['git_commit'][:7]}"


def test_the_records_cover_both_kinds() -> None:
    kinds = [check.cpu_kind(r["environment"]["cpu"]) for r in RECORDS]
    assert kinds.count("AMD EPYC") >= 3 and kinds.count("Intel Xeon") >= 1, kinds


@pytest.mark.parametrize("record", RECORDS, ids=name)
def test_an_unchanged_run_passes_every_speed_row(record: dict) -> None:
    assert {k: v for k, v in verdicts(record).items() if v != "ok"} == {}


@pytest.mark.parametrize("record", RECORDS, ids=name)
def test_a_2x_slowdown_fails_every_row_of_its_backend(record: dict) -> None:
    """Each gated (task, model, backend) in turn: slowed 2x, each row reading that timing regresses, and no other row
    of the run does (a slower PyTorch path only raises the ONNX speed-ups over it)."""
    targets = sorted({(r["task"], r["model"], backend_of(r["score"])) for r in GATED})
    for task, model, backend in targets:
        result = verdicts(slowed(record, task, model, backend))
        hit = {k for k in result if k[:2] == (task, model) and backend_of(k[2]) == backend}
        assert hit and {k: result[k] for k in hit} == dict.fromkeys(hit, "REGRESSED"), (task, model, backend, result)
        assert {k: v for k, v in result.items() if k not in hit and v != "ok"} == {}, (task, model, backend)


def test_each_kept_floor_and_each_dropped_row_says_why() -> None:
    """A gated row's factor stands clear of a 2x slowdown (> 0.5) and names its evidence; every speed row a run
    produces is either gated or named in `ungated` with its reason."""
    for row in GATED:
        assert 0.5 < row["tolerance"] < 1 and "runs" in row["why"] and set(row["by_cpu"]) >= {"AMD EPYC", "Intel Xeon"}, row
    ungated = BASELINE["tolerance_why"]["ungated"]
    assert all("slowdown" in why for why in ungated.values())
    produced = {(r["task"], r["model"], r["score"]) for rec in RECORDS for r in check.baseline_rows(rec) if r["kind"] == "speed"}
    assert produced == {(r["task"], r["model"], r["score"]) for r in GATED} | check.ungated(BASELINE)


def test_a_run_is_judged_against_its_own_kind() -> None:
    """A row with values per CPU kind judges a run on its kind's; an unknown kind gets the lowest, and says so."""
    row = {"kind": "speed", "value": 10.0, "by_cpu": {"AMD EPYC": 10.0, "Intel Xeon": 4.0}, "tolerance": 0.7}
    assert check.judge(row, 6.0, TOLERANCE, "AMD EPYC")[0] == "REGRESSED"
    assert check.judge(row, 6.0, TOLERANCE, "Intel Xeon") == ("ok", ">= 2.8 (0.7x Intel Xeon value)")
    assert check.judge(row, 3.0, TOLERANCE, "Apple M2") == ("ok", ">= 2.8 (0.7x lowest value, Intel Xeon's: none for Apple M2)")
    assert check.cpu_kind("Intel(R) Xeon(R) Platinum 8480+") == "Intel Xeon" and check.cpu_kind("AMD EPYC 7B13") == "AMD EPYC"
