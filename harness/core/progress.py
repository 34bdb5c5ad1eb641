"""A run's live progress, for `harness status RUN_DIR`: which stage runs, how far it has got, an ETA.

- The pipeline names the file: `recording(out / "status.json")` (rank 0 only; nothing is written outside
  a recording).
- The cached stages name the stage (`stage`): computing or taken from the cache, with its key.
- Every long loop of the engine and of plugins counts through a `Bar`. It is a tqdm bar, so the log shows the
  same rows, rate and ETA, and it also records its counts in the file.

The file is written whole (a temporary file, then a rename), at most every INTERVAL seconds, and at once
when a stage starts or the run ends. It says `finished` at the end; a run that fails removes it, as it leaves
nothing else behind (its error says why). A run killed outright (SIGKILL, a lost machine) leaves `running` with
a process that is gone, and `describe` says so.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from harness.core.files import write_text_atomic

INTERVAL = 5.0  # seconds between writes of a bar's progress
FILE = "status.json"

_status: dict = {}
_path: Path | None = None
_last = 0.0


def _write(force: bool = False) -> None:
    global _last
    now = time.time()
    if _path is None or (not force and now - _last < INTERVAL):
        return
    _last = now
    _status["updated"] = now
    try:
        write_text_atomic(_path, json.dumps(_status, indent=1) + "\n")
    except OSError:  # a status file is a courtesy: a full disk fails the run's own writes, not this one
        pass


@contextmanager
def recording(path: Path) -> Iterator[None]:
    """Record progress into `path` while the block runs, then `finished`; a block that raises removes the file."""
    global _path
    _path = Path(path)
    _status.clear()
    _status.update(pid=os.getpid(), host=socket.gethostname(), started=time.time(), state="running", task=None,
                   stages=[], bar=None)
    _write(force=True)
    try:
        yield
    except BaseException:  # the run leaves nothing behind (its error says why): the file goes too
        _path.unlink(missing_ok=True)
        raise
    else:
        _status["state"] = "finished"
        _status["bar"] = None
        _write(force=True)
    finally:
        _path = None


def task(name: str) -> None:
    """The task the run has moved on to."""
    _status["task"] = name
    _write(force=True)


def planned(steps: list[dict]) -> None:
    """The run's stages as its start found them (harness/pipeline.py's `plan`: task, name, state), so that `describe`
    can say how far the whole run has got."""
    if _path is None:
        return
    _status["plan"] = [{"task": s["task"], "stage": s["name"], "compute": s["state"] != "cached"} for s in steps]
    _write(force=True)


def stage(name: str, key: str, cached: bool) -> None:
    """A cached stage starts: computing it, or reusing the cache's entry."""
    if _path is None:
        return
    _status["stages"].append({"task": _status.get("task"), "stage": name, "key": key, "cached": cached,
                              "started": time.time()})
    _status["bar"] = None
    _write(force=True)


class Bar(tqdm):
    """A tqdm progress bar that also records its counts, rate and ETA in the run's status file.

    The ETA is what is left over the rate so far, unless the loop knows better: `set_eta` gives seconds left
    from a model of its work (labelling's rows grow longer as it goes), and the log line and the file show that.
    """

    _eta: tuple[float, float] | None = None  # (seconds left, when they were given)

    def set_eta(self, seconds: float | None) -> None:
        """Seconds left from the loop's own model of its work (None: back to the rate's)."""
        self._eta = None if seconds is None else (seconds, time.time())

    def _given_eta(self) -> float | None:
        """The loop's seconds left, less the time since it gave them."""
        if self._eta is None:
            return None
        seconds, given = self._eta
        return max(0.0, seconds - (time.time() - given))

    @property
    def format_dict(self) -> dict:
        d = super().format_dict
        if self._eta is not None:  # tqdm's own `remaining` is the rate's: show the loop's in its place
            d["eta"] = clock(self._given_eta())
            d["bar_format"] = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{eta}, {rate_fmt}{postfix}]"
        return d

    def update(self, n: float | None = 1) -> bool | None:
        shown = super().update(n)
        self.record()
        return shown

    def close(self) -> None:
        if not self.disable:
            self.record(force=True)
        super().close()

    def record(self, force: bool = False) -> None:
        if _path is None or self.disable:  # a silent inner bar (a teacher's logits per labelling chunk) counts nothing
            return
        d = self.format_dict
        elapsed, done = d["elapsed"], d["n"]
        rate = d["rate"] or ((done - d.get("initial", 0)) / elapsed if elapsed else None)
        eta = self._given_eta()
        if eta is None and rate and d["total"] is not None:
            eta = (d["total"] - done) / rate
        _status["bar"] = {"desc": d["prefix"], "done": done, "total": d["total"], "unit": d["unit"], "rate": rate,
                          "elapsed_s": elapsed, "eta_s": eta}
        _write(force)


def where() -> str | None:
    """Where the latest recorded run of this process was (for the line an interrupted run ends with): the stage it
    was computing and its task, with its bar's count, e.g. `student bilstm_soft of sst2 (epoch 1: 1,200 / 5,000 rows)`,
    or the last stage it finished; None when it recorded none."""
    stages = _status.get("stages") or []
    if not stages:
        return None
    last = stages[-1]
    text = f"{last['stage']}" + (f" of {last['task']}" if last.get("task") else "")
    if last["cached"]:
        return f"after {text} (from the cache)"
    bar = _status.get("bar")
    if bar and bar.get("total"):
        text += f" ({bar['desc'] + ': ' if bar.get('desc') else ''}{bar['done']:,.0f} / {bar['total']:,.0f} {bar['unit']})"
    return f"during {text}"


def clock(seconds: float) -> str:
    """`1:02:03`, `4:05`."""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def alive(status: dict) -> bool | None:
    """Whether the recording process still runs: None when it ran on another host."""
    if status.get("host") != socket.gethostname():
        return None
    try:
        os.kill(int(status["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe(run: Path, now: float | None = None) -> str:
    """What `harness status RUN_DIR` prints: the run's state, its task and stage, how far the whole run has got
    (stages begun of its plan), the stage's bar (done of total, rate, ETA), and the stages before it.

    Raises:
        FileNotFoundError: the folder has no status file.
        ValueError: the status file is not one this module wrote.
    """
    path = run / FILE
    text = path.read_text()
    try:
        status = json.loads(text)
        state, started, updated = status["state"], status["started"], status["updated"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a status file ({e})") from None
    now = time.time() if now is None else now
    live = alive(status)
    if state == "running" and live is False:
        state = "stopped: its process is gone (killed?); rerun the same command to resume from the cache"
    where = {True: "running", False: "gone", None: f"on host {status.get('host')}"}[live]
    lines = [f"{run}: {state}; pid {status.get('pid')} ({where}), started {clock(now - started)} ago, "
             f"updated {clock(now - updated)} ago"]
    stages = status.get("stages") or []
    if stages:
        last, ended = stages[-1], state != "running"  # a finished or stopped run's last stage is not computing now
        doing = ("from the cache" if last["cached"] else "computed" if state == "finished"
                 else "stopped while computing" if ended else "computing")
        lines.append(f"task {last.get('task') or status.get('task')}, {'last stage' if ended else 'stage'} "
                     f"{last['stage']} ({doing}, {last['key']})")
    plan = status.get("plan")
    if plan and state == "running":
        to_compute = sum(step["compute"] for step in plan)
        begun = sum(not s["cached"] for s in stages)
        lines.append(f"whole run: stage {len(stages)} of {len(plan)}; of the {to_compute} it found to compute at its "
                     f"start, {max(0, to_compute - begun)} not begun yet")
    bar = status.get("bar")
    if bar and state == "running":
        done, total, unit = bar["done"], bar["total"], bar["unit"]
        of = f" / {total:,.0f} {unit} ({100 * done / total:.1f}%)" if total else f" {unit}"
        rate = f", {bar['rate']:,.1f} {unit}/s" if bar.get("rate") else ""
        eta = f", ETA {clock(bar['eta_s'])} for this bar" if bar.get("eta_s") is not None else ""
        lines.append(f"  {bar['desc'] or 'progress'}: {done:,.0f}{of}{rate}{eta}, {clock(bar['elapsed_s'])} so far")
    if len(stages) > 1:
        runs = [(key, len(list(group))) for key, group in itertools.groupby(
            f"{s.get('task')} {s['stage']} {'cached' if s['cached'] else 'computed'}" for s in stages[:-1])]
        lines.append("earlier: " + "; ".join(key + (f" x{n}" if n > 1 else "") for key, n in runs))
    return "\n".join(lines)
