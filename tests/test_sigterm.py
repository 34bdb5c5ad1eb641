"""SIGTERM, the signal `timeout`, systemd, Slurm and Ray send, ends a run as an interrupt does: the unfinished work is
left to resume, and one line says where it stopped (exit 143). Before, the run died at once with no word after the
progress bar (it still resumed). A real run terminated while a student trains, then resumed to the uninterrupted
run's numbers: tests/test_kill_resume.py (slow tier)."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.core import progress
from harness.data.tasks import REPO_ROOT


def test_where_names_the_stage_and_its_bar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stage being computed, its task and its bar's count; a stage taken from the cache is one finished."""
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    with progress.recording(tmp_path / progress.FILE):
        progress.task("sst2")
        progress.stage("teacher", "k1", cached=True)
        assert progress.where() == "after teacher of sst2 (from the cache)"
        progress.stage("student", "k2", cached=False)
        assert progress.where() == "during student of sst2"
        bar = progress.Bar(total=400, desc="bilstm_soft epoch 1/3", unit="batch", file=io.StringIO())
        bar.update(120)
        assert progress.where() == "during student of sst2 (bilstm_soft epoch 1/3: 120 / 400 batch)"
        bar.close()


def test_sigterm_is_one_line_and_exit_143(tmp_path: Path) -> None:
    """A command that receives SIGTERM inside a stage removes its status file (as an interrupted run does) and ends
    with one line naming the stage and that a rerun resumes, exit 143 (128 + 15)."""
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        from pathlib import Path
        from harness import cli
        from harness.core import progress

        def stage_then_sigterm(args):
            with progress.recording(Path({str(tmp_path)!r}) / progress.FILE):
                progress.task("sst2")
                progress.stage("student", "abc", cached=False)
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(30)  # the handler interrupts this

        cli.cmd_status = stage_then_sigterm
        sys.exit(cli.main(["status", {str(tmp_path)!r}]))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 143, (done.returncode, done.stderr[-2000:])
    assert done.stderr.splitlines() == ["terminated (SIGTERM) during student of sst2: rerun the same command to resume "
                                        "from the last finished step"]
    assert not (tmp_path / progress.FILE).exists()
