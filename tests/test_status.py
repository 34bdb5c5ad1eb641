"""`harness status RUN_DIR`: the status file a run keeps (stage, a bar's rows done of total, rate, ETA), what
`describe` makes of it, a run whose process is gone, and the command's errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import harness

from harness.core import progress


def test_a_recording_keeps_stage_and_bar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a recording, a stage and a bar's counts reach the file; the ETA is what is left over the rate."""
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    path = tmp_path / progress.FILE
    with progress.recording(path):
        progress.task("sst2")
        progress.stage("label", "abc123", cached=False)
        bar = progress.Bar(total=1000, desc="label transfer set", unit="ex", file=io.StringIO())
        bar.update(250)
        status = json.loads(path.read_text())
        assert status["state"] == "running" and status["stages"][-1]["stage"] == "label"
        assert status["bar"]["done"] == 250 and status["bar"]["total"] == 1000
        rate = status["bar"]["rate"]
        assert status["bar"]["eta_s"] == pytest.approx(750 / rate)
        text = progress.describe(tmp_path)
        assert "task sst2, stage label (computing, abc123)" in text
        assert "label transfer set: 250 / 1,000 ex (25.0%)" in text and "ETA" in text and "(running)" in text
    assert json.loads(path.read_text())["state"] == "finished"
    assert "task sst2, last stage label (computed, abc123)" in progress.describe(tmp_path)


def test_the_plan_says_how_far_the_whole_run_has_got(tmp_path: Path) -> None:
    """With the run's plan recorded (its stages, and which it found to compute), `describe` counts the stages begun
    and the computed ones not begun; a finished run's status says nothing of the plan."""
    plan = [{"task": "sst2", "name": name, "state": state} for name, state in
            (("teacher", "cached"), ("augment", "cached"), ("label", "to compute"), ("bilstm", "to compute"),
             ("bilstm_soft", "resumes"))]
    with progress.recording(tmp_path / progress.FILE):
        progress.planned(plan)
        progress.task("sst2")
        for name, cached in (("teacher", True), ("augment", True), ("label", False)):
            progress.stage(name, "k", cached=cached)
        assert "whole run: stage 3 of 5; of the 3 it found to compute at its start, 2 not begun yet" in \
            progress.describe(tmp_path)
    assert "whole run" not in progress.describe(tmp_path)


def test_a_silent_inner_bar_leaves_the_outer_bar_in_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Labelling counts rows through its bar while the teacher's logits run a disabled bar per chunk: the file
    keeps the rows done of the whole set (it showed the inner bar's 0 of a chunk)."""
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    path = tmp_path / progress.FILE
    with progress.recording(path):
        outer = progress.Bar(total=1000, desc="label transfer set", unit="ex", file=io.StringIO())
        outer.update(250)
        inner = progress.Bar(total=100, desc="teacher logits", unit="ex", disable=True)
        inner.update(100)
        inner.close()
        bar = json.loads(path.read_text())["bar"]
        assert (bar["desc"], bar["done"], bar["total"]) == ("label transfer set", 250, 1000)


def test_a_failed_run_leaves_no_status(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), progress.recording(tmp_path / progress.FILE):
        raise RuntimeError("boom")
    assert not (tmp_path / progress.FILE).exists()


def test_a_killed_run_is_called_stopped(tmp_path: Path) -> None:
    """`running` in the file, but its process has exited: stopped, and how to resume."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with progress.recording(tmp_path / progress.FILE):
        progress.stage("teacher", "def456", cached=False)
    status = json.loads((tmp_path / progress.FILE).read_text())
    status.update(state="running", pid=int(gone.stdout))
    (tmp_path / progress.FILE).write_text(json.dumps(status))
    text = progress.describe(tmp_path)
    assert "stopped: its process is gone" in text and "last stage teacher (stopped while computing, def456)" in text


def test_status_command_errors(tmp_path: Path) -> None:
    missing = harness("status", str(tmp_path))
    assert missing.returncode == 2 and "no status.json" in missing.stderr
    (tmp_path / progress.FILE).write_text("{not json")
    bad = harness("status", str(tmp_path))
    assert bad.returncode == 2 and "not a status file" in bad.stderr


def test_a_bar_shows_the_eta_its_loop_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`set_eta` replaces the rate's ETA in the status file and in the log line; None brings the rate's back."""
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    log = io.StringIO()
    with progress.recording(tmp_path / progress.FILE):
        bar = progress.Bar(total=1000, desc="label transfer set", unit="ex", file=log)
        bar.set_eta(7200.0)
        bar.update(250)
        eta = json.loads((tmp_path / progress.FILE).read_text())["bar"]["eta_s"]
        assert 7100 < eta <= 7200  # less the moments since it was given
        bar.refresh()
        line = log.getvalue().split("\r")[-1]
        assert "250/1000 [" in line and ("<1:59:" in line or "<2:00:00" in line), line
        assert "ETA 1:59:" in progress.describe(tmp_path) or "ETA 2:00:00" in progress.describe(tmp_path)
        bar.set_eta(None)
        bar.update(250)
        rate = json.loads((tmp_path / progress.FILE).read_text())["bar"]["rate"]
        assert json.loads((tmp_path / progress.FILE).read_text())["bar"]["eta_s"] == pytest.approx(500 / rate)


def test_labelling_times_its_chunks_by_their_lengths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Chunks go shortest first, so each takes longer than the last. When a chunk costs a per row plus b per
    character, the bar's ETA after two chunks is the exact time left; the rate so far would say far less."""
    import numpy as np
    import pyarrow as pa

    from harness.engine import label

    texts = ["w" * (1 + 3 * i) for i in range(50)]  # shortest first already: 5 chunks of 10
    clock = [0.0]

    class Teacher:
        mask_token = "[MASK]"

        def logits(self, rows: list[tuple[str, ...]], batch_size: int) -> np.ndarray:
            clock[0] += 0.01 * len(rows) + 0.002 * sum(len(r[0]) for r in rows)
            return np.zeros((len(rows), 2), dtype=np.float32)

    etas: list[float | None] = []
    monkeypatch.setattr(label, "CHUNK", 10)
    monkeypatch.setattr(label.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(progress.Bar, "set_eta", lambda self, seconds: etas.append(seconds))
    label.label(Teacher(), pa.table({"text_a": texts}), batch_size=4, work=tmp_path, num_labels=2)

    cost = [0.01 * 10 + 0.002 * sum(len(t) for t in texts[i : i + 10]) for i in range(0, 50, 10)]
    assert etas[0] is None  # one chunk timed: the rate's ETA
    assert etas[1:] == pytest.approx([sum(cost[k + 1 :]) for k in range(1, 5)])
    by_rate = 30 / (20 / (cost[0] + cost[1]))  # after two chunks: 30 rows left at the rate so far
    assert etas[1] > 1.8 * by_rate
