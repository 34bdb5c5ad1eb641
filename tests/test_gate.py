"""The CI gate is sharp: a real 2x slowdown of a student's inference path, or a 3-point accuracy drop,
fails `harness check` against the committed baseline's tolerances, and the same measurement without
the injection passes it.

The speed rows are calibrated (harness/speed/calibrate.py): a real student is timed six times in this
process around its calibration workload, alternately as it is and with every call doing its work twice. No
test asserts a wall-clock time: each compares ratios measured moments apart in one process.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.core.config import MeasureConfig
from harness.core.registry import STUDENTS
from harness.data.tasks import REPO_ROOT, Split, load_task
from harness.engine.wordmodel import StudentPredictor, Vocab
from harness.results import check
from harness.speed import calibrate, efficiency, measure
from harness.speed.env import cpu_model
from students.bilstm import BiLSTMSettings

BASELINE = REPO_ROOT / "benchmarks" / "baseline.json"
# 1,024 training sentences (2 batches of 512) timed in 8 passes, the median pass kept; 50 dev sentences x 3 at batch 1
CFG = MeasureConfig(interactive_n=50, warmup=5, offline_n=1024, offline_min_calls=16, offline_max_s=20.0)


class TwiceSlower:
    """A student whose every call does its whole work (tokenising, padding, the network) twice."""

    def __init__(self, predictor: StudentPredictor) -> None:
        self.predictor = predictor

    def logits(self, texts: list, batch_size: int) -> np.ndarray:
        self.predictor.logits(texts, batch_size)
        return self.predictor.logits(texts, batch_size)


@pytest.fixture(scope="module")
def splits(data_root: Path) -> dict[str, Split]:
    return load_task("sst2", data_root)


@pytest.fixture(scope="module")
def student(splits: dict[str, Split]) -> StudentPredictor:
    """The paper's SST-2 student shape (hidden 150, FC 200, multichannel 50-d input), random weights:
    speed does not depend on the weights' values."""
    vocab = Vocab.from_texts([[t[0] for t in splits["train"].texts]])
    torch.manual_seed(0)
    model = STUDENTS.get("bilstm").build(BiLSTMSettings(hidden=150, fc=200, multichannel=True), len(vocab), 50, 2)
    return StudentPredictor(model, vocab, {"student": "bilstm", "num_labels": 2, "max_tokens": 64})


def results_of(predictor, splits: dict[str, Split], accuracy: float = 80.0) -> dict:
    """A results.json holding one student's dev accuracy and its PyTorch timing, as a run writes them."""
    speed = efficiency.time_one(predictor, "cpu", splits["validation"], splits["train"], "student", CFG)
    model = {"kind": "student", "scores": {"dev": {"accuracy": accuracy}}, "params_total": 1, "params_non_embedding": 1,
             "speed": [{"backend": "torch", "device": "cpu", "dtype": "fp32", **speed}]}
    return {"environment": {"cpu": cpu_model()}, "preset": "smoke", "tasks": {"sst2": {"models": {"bilstm": model}}}}


def gate(results: dict, baseline_results: dict) -> dict[str, str]:
    """score -> status of every row, judged with the committed baseline's tolerances."""
    baseline = {**check.make_baseline(baseline_results), "tolerance": check.load_baseline(BASELINE)["tolerance"]}
    table = check.compare_to_baseline(results, baseline)
    return dict(zip(table["score"], table["status"]))


OFFLINE = "offline speed vs recurrent calibration"


def offline_speed(results: dict) -> float:
    """The gated offline calibrated speed of a results dict's one student."""
    return next(r["value"] for r in check.baseline_rows(results) if r["score"] == OFFLINE)


@pytest.fixture(scope="module")
def timed(student: StudentPredictor, splits: dict[str, Split]) -> dict[str, dict]:
    """The student timed six times, interleaved: as it is, then twice slower, three times over.

    Load from elsewhere only ever slows a measurement, so each side of the slowdown check is read at its
    best, as the gate reads each side of a ratio (a quick measurement cannot be an accident; a slow one
    can): `baseline` is the fastest plain run, `slowed` the fastest slowed one. `again` is the slowest plain
    run, which must still pass against `baseline`, as a rerun of unchanged code does in CI. (On a 2-core
    AMD EPYC VM: plain runs 0.82-0.93x of each other, best slowed against best plain 0.48-0.55x, and one
    clean-clone CI run where single runs, not the best of several, let a slowed one pass at over 0.6x.)
    """
    with measure.threads_for(2):
        runs = [results_of(model, splits) for _ in range(3) for model in (student, TwiceSlower(student))]
    plain = sorted(runs[0::2], key=offline_speed, reverse=True)
    return {"baseline": plain[0], "again": plain[-1], "slowed": max(runs[1::2], key=offline_speed)}


def test_calibration_is_recorded_around_every_regime(timed: dict) -> None:
    """Both regimes carry the recurrent workload's time before and after, and what else ran."""
    speed = timed["baseline"]["tasks"]["sst2"]["models"]["bilstm"]["speed"][0]
    for regime in ("interactive", "offline"):
        cal = speed[regime]["calibration"]
        assert cal["workload"] == "recurrent" and cal["batch"] == (1 if regime == "interactive" else 128)
        assert min(cal["ms_before"], cal["ms_after"]) <= cal["ms"] <= max(cal["ms_before"], cal["ms_after"])
        assert set(speed[regime]["conditions"]) >= {"wall_s", "cpu_s", "load_1m", "others_share", "busy"}


def test_a_twice_slower_student_fails_the_gate(timed: dict) -> None:
    """The offline calibrated speed halves, below the baseline's floor; the run without the slowdown passes."""
    slowed = gate(timed["slowed"], timed["baseline"])
    assert slowed[OFFLINE] == "REGRESSED"
    assert gate(timed["again"], timed["baseline"])[OFFLINE] == "ok"
    assert all(status == "ok" for status in gate(timed["again"], timed["baseline"]).values())


def test_a_three_point_accuracy_drop_fails_the_gate(timed: dict) -> None:
    """3 points below the baseline's dev accuracy regresses; the baseline's own value passes."""
    dropped = {**timed["again"]}
    dropped["tasks"] = {"sst2": {"models": {"bilstm": {**timed["again"]["tasks"]["sst2"]["models"]["bilstm"],
                                                       "scores": {"dev": {"accuracy": 77.0}}}}}}
    assert gate(dropped, timed["baseline"])["dev accuracy"] == "REGRESSED"
    assert gate(timed["again"], timed["baseline"])["dev accuracy"] == "ok"


def test_calibrated_speed_is_the_workload_time_over_the_model_time() -> None:
    """Offline: workload ms per call over the model's ms per sentence; batch 1: over its p50."""
    off = {"whole_set_s": 6.0, "whole_set": 3000, "calibration": {"ms": 4.0}}
    assert calibrate.calibrated_speed(off, "offline") == pytest.approx(4.0 / 2.0)
    assert calibrate.calibrated_speed({"p50_ms": 0.5, "calibration": {"ms": 2.0}}, "interactive") == pytest.approx(4.0)
    assert calibrate.calibrated_speed({"p50_ms": 0.5}, "interactive") is None


def test_busy_conditions_are_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Machine CPU time beyond this process's own shows as other processes' share, and flags the block."""
    clock = iter([100.0, 103.0])  # the machine ran 3 CPU-seconds during the block
    monkeypatch.setattr(measure, "machine_busy_s", lambda: next(clock))
    with measure.conditions() as quiet_or_not:
        time.sleep(0.05)
    wall = quiet_or_not["wall_s"]
    assert quiet_or_not["others_share"] == pytest.approx((3.0 - quiet_or_not["cpu_s"]) / (wall * measure.os.cpu_count()),
                                                         rel=0.02)
    assert quiet_or_not["busy"] is True
    clock = iter([100.0, 100.0])
    with measure.conditions() as quiet:
        pass
    assert quiet["others_share"] == 0.0 and quiet["busy"] is False
