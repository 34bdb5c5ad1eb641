"""The committed baseline catches a broken label-only student: CI's own smoke settings for SST-2's
`bilstm`, run once as they are and once with its training broken (every loss multiplied by zero, so
no weight moves), judged by `harness check`'s rules against benchmarks/baseline.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from smoke_cache import SMOKE_SST2, seed_cache

from harness import cli
from harness.data.tasks import REPO_ROOT
from harness.engine import distill
from harness.results import check

BASELINE = REPO_ROOT / "benchmarks" / "baseline.json"
ROW = ("sst2", "bilstm", "dev accuracy")


def smoke_bilstm(out: Path, cache: Path) -> dict:
    """CI's smoke preset for SST-2's label-only student alone (not timed: only accuracy is judged here)."""
    assert cli.main([*SMOKE_SST2, "--out", str(out), "--cache-dir", str(cache)]) == 0
    return json.loads((out / "results.json").read_text())


def status(results: dict) -> str:
    table = check.compare_to_baseline(results, check.load_baseline(BASELINE))
    row = table[(table["task"] == ROW[0]) & (table["model"] == ROW[1]) & (table["score"] == ROW[2])]
    return row["status"].item()


@pytest.mark.slow
def test_a_broken_label_only_student_fails_the_committed_baseline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   smoke_sst2_cache: Path) -> None:
    cache = tmp_path / "cache"
    seed_cache(smoke_sst2_cache, cache)  # the teacher and data, computed once for the session; the student trains here
    sound = smoke_bilstm(tmp_path / "sound", cache)
    assert status(sound) == "ok"
    shutil.rmtree(cache / "student")  # the teacher and data stay cached; the student is trained again, broken
    real_loss = distill.distill_loss
    monkeypatch.setattr(distill, "distill_loss", lambda *a, **k: 0.0 * real_loss(*a, **k))
    broken = smoke_bilstm(tmp_path / "broken", cache)
    accuracy = broken["tasks"]["sst2"]["models"]["bilstm"]["scores"]["dev"]["accuracy"]
    assert accuracy < sound["tasks"]["sst2"]["models"]["bilstm"]["scores"]["dev"]["accuracy"]
    assert status(broken) == "REGRESSED"
