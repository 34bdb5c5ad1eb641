"""A run killed outright (SIGKILL of its whole process group) in the middle of a stage, then run again, ends as an
uninterrupted run does: the same scores of every model on every split, the same cache entries with the same files
(every file's sha256, from their manifests), and no work folder left. Killed while labelling the transfer set (the
label stage resumes chunk by chunk, harness/engine/label.py) and while a student trains (it resumes from its last
training state, harness/engine/distill.py). The stage to kill in is found by polling what the run writes in its
cache and its log, never by sleeping a fixed time, and the test checks that the kill landed inside it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_runner import OFFLINE

from harness.data.tasks import REPO_ROOT
from harness.engine import label, manifest, train_state
from harness.engine.cache import PARTIAL, Store, survey

# The tiny teacher (at a learning rate it learns at: 64% on the selection split, the distilled student 67%), on a
# train slice whose transfer set spans three labelling chunks of label.CHUNK rows: 1,500 sentences augmented 48 times
# keep 45,641 unique rows. Small students, two epochs of two checks each.
SETS = ["teacher.name=hf_tiny", "teacher.lr=0.001", "train_limit=1500", "dev_limit=200", "augment.n_iter=48",
        "measure.enabled=false", "measure.threads=1", "ablations=", "student.epochs=2", "student.evals_per_epoch=2",
        "student.hidden=16", "student.fc=16", "student.batch_size=100"]
ARGS = ["run", "--preset", "smoke", "--tasks", "sst2", "--students", "bilstm,bilstm_soft", "--device", "cpu",
        *[a for s in SETS for a in ("--set", s)]]
# A student keeps a training state at its first check a minute after the last (distill.SAVE_EVERY_S): these students
# train for seconds, so the run killed mid-student saves one at every check, as a long one would, for its rerun to resume.
SAVE_AT_EVERY_CHECK = ("import sys; from harness.engine import distill; distill.SAVE_EVERY_S = 0.0; "
                       "from harness.cli import main; sys.exit(main(sys.argv[1:]))")
TIMINGS = {"seconds", "label_seconds", "earlier_seconds", "peak_rss_gb", "peak_rss_scope"}  # meta.json: how long, how big
WAIT_S = 300  # the most a run may take to reach the stage to kill in


def start(out: Path, cache: Path, log: Path, save_at_every_check: bool = False) -> subprocess.Popen:
    """`python -m harness ARGS` in its own process group, offline, its stdout and stderr into `log`.out/.err."""
    env = {**os.environ, **OFFLINE}
    env.pop("HARNESS_DATA", None)
    command = [sys.executable, "-c", SAVE_AT_EVERY_CHECK] if save_at_every_check else [sys.executable, "-m", "harness"]
    with open(log.with_suffix(".out"), "w") as stdout, open(log.with_suffix(".err"), "w") as stderr:
        return subprocess.Popen([*command, *ARGS, "--out", str(out), "--cache-dir", str(cache)], cwd=REPO_ROOT, env=env,
                                stdout=stdout, stderr=stderr, start_new_session=True)


def tail(log: Path) -> str:
    return "\n".join(log.with_suffix(s).read_text()[-3000:] for s in (".out", ".err"))


def finish(proc: subprocess.Popen, log: Path) -> str:
    """Wait for the run to end; it must succeed. Its stdout."""
    try:
        proc.wait(timeout=600)
    except subprocess.TimeoutExpired:
        kill(proc)
        raise
    assert proc.returncode == 0, tail(log)
    return log.with_suffix(".out").read_text()


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL the run's whole process group, and reap it."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def kill_when(proc: subprocess.Popen, log: Path, found: Callable[[], Path | None], what: str) -> Path:
    """Poll `found` until it names a folder, then SIGKILL the run at once; the folder. Fails (killing the run)
    if the run ends first or does not get there within WAIT_S."""
    folder = wait_for(proc, log, found, what)
    kill(proc)
    assert proc.returncode == -signal.SIGKILL
    return folder


def wait_for(proc: subprocess.Popen, log: Path, found: Callable[[], Path | None], what: str) -> Path:
    """Poll `found` until it names a folder; the folder. Fails (killing the run) if the run ends first or does not
    get there within WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while (folder := found()) is None:
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit status {proc.returncode}) before it was {what}:\n{tail(log)}")
        if time.monotonic() > deadline:
            kill(proc)
            pytest.fail(f"the run was not {what} after {WAIT_S} s:\n{tail(log)}")
        time.sleep(0.02)
    return folder


def seed_cache(source: Path, cache: Path, stages: tuple[str, ...]) -> None:
    """Copy `source`'s committed entries of `stages` into `cache`: the stages before the one a test kills."""
    for stage in stages:
        for entry in (source / stage).iterdir():
            assert not entry.name.endswith(PARTIAL)
            shutil.copytree(entry, cache / stage / entry.name)


def scores(out: Path) -> dict[str, dict]:
    """Every model's scores on every split it was scored on."""
    models = json.loads((out / "results.json").read_text())["tasks"]["sst2"]["models"]
    return {name: model["scores"] for name, model in models.items()}


def entries(cache: Path) -> dict[str, dict]:
    """Every committed entry (`stage/key`) of the cache: its manifest (each file's size and sha256), but for meta.json,
    whose times and memory differ from run to run: its contents without them."""
    out = {}
    for stage in sorted(p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for entry in sorted(stage.iterdir()):
            files = manifest.read(entry)
            assert manifest.problem(entry) is None, entry
            meta = json.loads((entry / "meta.json").read_text())
            out[f"{stage.name}/{entry.name}"] = {**{k: v for k, v in files.items() if k != "meta.json"},
                                                 "meta.json": untimed(meta)}
    return out


def untimed(meta: dict) -> dict:
    """A stage's meta without its wall times and memory (a student's history holds the seconds at each check)."""
    meta = {k: v for k, v in meta.items() if k not in TIMINGS}
    if "history" in meta:
        meta["history"] = [{k: v for k, v in check.items() if k != "seconds"} for check in meta["history"]]
    return meta


def assert_same_as(uninterrupted: tuple[Path, Path], out: Path, cache: Path) -> None:
    """Nothing unfinished is left in the rerun's cache, and its scores and cache entries are the uninterrupted run's."""
    assert [(str(path), state) for path, state, _ in survey(Store(cache)) if state != "ok"] == []
    leftovers = [str(p) for p in cache.rglob("*") if p.name.endswith((PARTIAL, ".old")) or ".tmp" in p.name
                 or "train_state" in p.name or ".discarded-" in p.name]  # work folders, temp files, training states
    assert leftovers == []
    assert scores(out) == scores(uninterrupted[0])
    mine, theirs = entries(cache), entries(uninterrupted[1])
    assert mine.keys() == theirs.keys()
    unlike = [f"{entry}/{name}" for entry in sorted(mine) for name in sorted(mine[entry].keys() | theirs[entry].keys())
              if mine[entry].get(name) != theirs[entry].get(name)]
    assert not unlike, f"files unlike the uninterrupted run's: {', '.join(unlike)}"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> tuple[Path, Path]:
    """The run from an empty cache, never stopped: (its output folder, its cache)."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    finish(start(tmp / "out", tmp / "cache", tmp / "log"), tmp / "log")
    (work,) = (tmp / "cache" / "label").iterdir()
    rows = json.loads((work / "meta.json").read_text())["rows"]
    assert rows > 2 * label.CHUNK, f"the transfer set ({rows} rows) must span at least three labelling chunks"
    return tmp / "out", tmp / "cache"


@pytest.mark.slow
def test_killed_while_labelling_resumes_to_the_same_run(tmp_path: Path, uninterrupted: tuple[Path, Path]) -> None:
    """Killed after the first or second of three chunks (its progress saved, the label entry not committed): the
    rerun labels from the next chunk on, trains both students, and ends with the uninterrupted run's numbers."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    seed_cache(uninterrupted[1], cache, ("teacher", "augment"))

    def between_chunks() -> Path | None:
        for path in (cache / "label").glob(f"*{PARTIAL}/progress.json"):
            try:
                progress = json.loads(path.read_text())  # (written atomically)
            except FileNotFoundError:  # committed (renamed) meanwhile: the run got past every chunk
                continue
            if 1 <= progress["chunks"] < progress["of"]:
                return path.parent
        return None

    work = kill_when(start(out, cache, tmp_path / "killed"), tmp_path / "killed", between_chunks,
                     "labelling between two chunks")
    progress = json.loads((work / "progress.json").read_text())
    assert 1 <= progress["chunks"] < progress["of"] and progress["of"] >= 3, progress
    assert not (cache / "label" / work.name.removesuffix(PARTIAL)).exists()  # the kill came before the commit
    assert not (cache / "student").exists()

    stdout = finish(start(out, cache, tmp_path / "rerun"), tmp_path / "rerun")
    assert f"[label] computing ({work.name.removesuffix(PARTIAL)})" in stdout
    rerun_bar = re.search(r"label transfer set:\s*\d+%\|[^|]*\|\s*(\d+)/(\d+)", (tmp_path / "rerun.err").read_text())
    assert rerun_bar and int(rerun_bar[1]) == progress["chunks"] * label.CHUNK, "the rerun did not resume its chunks"
    assert_same_as(uninterrupted, out, cache)


def training_with_a_state(cache: Path, log: Path) -> Callable[[], Path | None]:
    """What `wait_for` polls: the distilled student's work folder once it holds a saved training state."""
    def found() -> Path | None:
        keys = re.findall(r"^\[student\] computing \((\w+)\)$", log.with_suffix(".out").read_text(), re.M)
        if len(keys) < 2:  # the second student is bilstm_soft, on the whole transfer set
            return None
        work = cache / "student" / f"{keys[1]}{PARTIAL}"
        return work if train_state.find(work / "train_state") else None
    return found


@pytest.mark.slow
def test_killed_while_a_student_trains_resumes_to_the_same_run(tmp_path: Path, uninterrupted: tuple[Path, Path]) -> None:
    """Killed while the distilled student trains on the transfer set, after it saved a training state (its entry
    not committed): the rerun resumes that state and ends with the uninterrupted run's numbers."""
    out, cache, log = tmp_path / "out", tmp_path / "cache", tmp_path / "killed"
    seed_cache(uninterrupted[1], cache, ("teacher", "augment", "label"))
    work = kill_when(start(out, cache, log, save_at_every_check=True), log, training_with_a_state(cache, log),
                     "training bilstm_soft with a saved training state")
    state = train_state.find(work / "train_state")
    assert state is not None, "training ended before the kill"  # the state is deleted once training ends
    assert not (cache / "student" / work.name.removesuffix(PARTIAL)).exists()
    saved = train_state.read_progress(state)

    stdout = finish(start(out, cache, tmp_path / "rerun"), tmp_path / "rerun")
    assert f"[student] computing ({work.name.removesuffix(PARTIAL)})" in stdout
    assert re.search(rf"^\[student\] bilstm_soft: resuming from .*: epoch {saved['epoch'] + 1}/2, after step {saved['step']} ",
                     stdout, re.M), stdout[-3000:]
    assert_same_as(uninterrupted, out, cache)


@pytest.mark.slow
def test_terminated_while_a_student_trains_says_where_and_resumes(tmp_path: Path, uninterrupted: tuple[Path, Path]) -> None:
    """SIGTERM (what `timeout`, systemd, Slurm and Ray send) while the distilled student trains: exit 143 and one last
    line naming the student stage and that a rerun resumes (tests/test_sigterm.py); the training state is kept, and
    the rerun resumes it and ends with the uninterrupted run's numbers. Before, the run died with no word."""
    out, cache, log = tmp_path / "out", tmp_path / "cache", tmp_path / "terminated"
    seed_cache(uninterrupted[1], cache, ("teacher", "augment", "label"))
    proc = start(out, cache, log, save_at_every_check=True)
    work = wait_for(proc, log, training_with_a_state(cache, log), "training bilstm_soft with a saved training state")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143, tail(log)
    last = log.with_suffix(".err").read_text().strip().splitlines()[-1]
    assert re.fullmatch(r"terminated \(SIGTERM\) during student of sst2 \(bilstm_soft epoch \d/2: [\d,]+ / [\d,]+ batch\): "
                        r"rerun the same command to resume from the last finished step", last), last
    assert train_state.find(work / "train_state") is not None and not (out / "results.json").exists()

    stdout = finish(start(out, cache, tmp_path / "rerun"), tmp_path / "rerun")
    assert re.search(r"^\[student\] bilstm_soft: resuming from ", stdout, re.M), stdout[-3000:]
    assert_same_as(uninterrupted, out, cache)
