"""Runs sharing a cache compute each entry once: one that finds another computing an entry waits (and
says so), then reuses its commit; a lock held by a killed process blocks no one, and the next run
resumes the work folder it left.

The other run is a real process (flock locks are per process); this test's run is `cached` in a thread,
so it can be watched while it waits. No timing is asserted: each step waits for the previous one's
sign (a file, a printed line), with a generous deadline only against hanging.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import filelock
import pytest

from harness.data.tasks import REPO_ROOT
from harness.engine import cache
from harness.engine.cache import Store
from harness.engine.stages import cached

DEADLINE = 120.0  # seconds; only against a hang (a process importing torch on 2 busy cores takes ~10 s)

# The other run: `cached` with a build that signals it started, then waits for the test's `go` file.
COMPUTING = """
import sys, time
from pathlib import Path
from harness.engine.cache import Store
from harness.engine.stages import cached

root = Path(sys.argv[1])

def build(work):
    (work / "out.txt").write_text("other run")
    (root / "started").write_text("")
    while not (root / "go").exists():
        time.sleep(0.05)
    return {"by": "other run"}

cached(Store(root / "cache"), "augment", "k", build)
"""

# A run killed half-way: it holds the entry's lock and has written part of its work folder.
HALF_WAY = """
import sys, time
from pathlib import Path
from harness.engine.cache import Store

root = Path(sys.argv[1])
store = Store(root / "cache")
with store.lock("label", "k"):
    (store.partial("label", "k") / "chunk0.npy").write_text("half done")
    (root / "started").write_text("")
    time.sleep(3600)
"""


def start(script: str, root: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, str(root)], cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_until(done: Callable[[], bool], what: str, proc: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + DEADLINE
    while not done():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the other process ended ({proc.returncode}) before {what}: {proc.stderr.read()[-2000:]}")
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.05)


class Waiter:
    """`cached(...)` run in a thread, its printed lines collected from capsys as they come."""

    def __init__(self, capsys: pytest.CaptureFixture, *args) -> None:
        self.capsys, self.printed, self.result, self.error = capsys, "", None, None
        self.thread = threading.Thread(target=self.run, args=args, daemon=True)
        self.thread.start()

    def run(self, *args) -> None:
        try:
            self.result = cached(*args)
        except BaseException as e:  # noqa: BLE001 (re-raised in the test's thread)
            self.error = e

    def says(self, text: str) -> bool:
        self.printed += self.capsys.readouterr().out
        return text in self.printed

    def join(self) -> tuple[Path, dict]:
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "the waiting run never finished"
        if self.error:
            raise self.error
        self.says("")
        return self.result


@pytest.fixture(autouse=True)
def report_often(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "WAIT_REPORT_SECONDS", 0.2)


def test_a_second_run_waits_then_reuses(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """While another process computes an entry, a run needing it waits, saying so (and how it goes);
    then it reuses that commit and builds nothing itself."""
    other = start(COMPUTING, tmp_path)
    try:
        wait_until(lambda: (tmp_path / "started").exists(), "the other run to start building", other)
        built = []
        waiter = Waiter(capsys, Store(tmp_path / "cache"), "augment", "k", lambda work: built.append(work) or {})
        wait_until(lambda: waiter.says("still waiting for another run"), "the waiting run to report")
        lock_file = tmp_path / "cache" / ".locks" / "augment" / "k.lock"
        assert f"[augment] waiting for another run to finish this entry (k): it holds {lock_file}" in waiter.printed
        (tmp_path / "go").write_text("")
        path, meta = waiter.join()
        assert other.wait(DEADLINE) == 0, other.stderr.read()[-2000:]
    finally:
        other.kill()
    assert built == [] and meta["cached"] is True and meta["by"] == "other run"
    assert (path / "out.txt").read_text() == "other run"
    assert "[augment] cached (k)" in waiter.printed and "computing" not in waiter.printed


def test_a_killed_holder_blocks_no_one_and_its_work_resumes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A run waiting for a process that is then killed takes the entry over and resumes its work folder."""
    other = start(HALF_WAY, tmp_path)
    try:
        wait_until(lambda: (tmp_path / "started").exists(), "the other run to lock the entry", other)
        seen = []

        def build(work: Path) -> dict:
            seen.append((work / "chunk0.npy").read_text())
            return {}

        waiter = Waiter(capsys, Store(tmp_path / "cache"), "label", "k", build)
        wait_until(lambda: waiter.says("[label] waiting for another run"), "the run to wait")
        os.kill(other.pid, signal.SIGKILL)
        path, meta = waiter.join()
    finally:
        other.kill()
        other.wait()
    assert seen == ["half done"] and meta["cached"] is False
    assert "[label] computing (k)" in waiter.printed
    assert (path / "chunk0.npy").read_text() == "half done" and not (tmp_path / "cache" / "label" / "k.partial").exists()


def test_a_lock_left_by_a_killed_process_is_free(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The OS drops a dead process's lock: the next run takes it at once, without waiting."""
    other = start(HALF_WAY, tmp_path)
    wait_until(lambda: (tmp_path / "started").exists(), "the other run to lock the entry", other)
    lock_file = tmp_path / "cache" / ".locks" / "label" / "k.lock"
    with pytest.raises(filelock.Timeout):  # held while it lives
        filelock.FileLock(lock_file).acquire(blocking=False)
    other.kill()
    other.wait()
    with Store(tmp_path / "cache").lock("label", "k"):
        assert capsys.readouterr().out == ""  # no "waiting" line
