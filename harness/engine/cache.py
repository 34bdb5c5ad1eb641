"""Content-keyed stage outputs: key = hash of the canonical JSON of everything that determines them.

A stage writes into `partial(stage, key)`, a folder that survives a killed run so that long stages
can resume from it, and calls `commit` when done, which writes the folder's manifest (every file's
size and sha256, harness/engine/manifest.py) and renames it into place atomically. An entry is reused only
when it matches its manifest (`problem`); a damaged one is discarded and its stage recomputed.

Runs that share a cache (at once, on one machine or several) compute each entry once: the run that
computes it holds the entry's lock file `.locks/<stage>/<key>.lock` (`Store.lock`: flock, through the
`filelock` package) from its check to its commit; another run needing the entry waits, then reuses
it. The OS drops the lock of a process that dies, so a killed run blocks no one: the next run takes
the lock and resumes from the `.partial` folder it left. Across machines the lock is as good as the
shared filesystem's locks: Linux turns flock on NFS into NFS locks (a dead client's lapse with its
lease); an NFS mount with `nolock` or `local_lock` locks each machine on its own (two machines may
then compute one entry at once, in one `.partial` folder: give them separate caches); where flock is
missing, filelock uses a marker file instead, which a killed run may leave behind (the waiting
message names it: remove it once no run is computing that entry).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock

from harness.core.files import write_text_atomic
from harness.engine import manifest

PARTIAL = ".partial"
LOCK = ".lock"
LOCKS = ".locks"  # root/.locks/<stage>/<key>.lock
WAIT_REPORT_SECONDS = 60.0  # a run waiting for another's lock says so this often
NO_LOCKS = {errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP}  # flock's answers on a filesystem without locks
_WARNED: set[Path] = set()  # caches already warned about having no locks


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace; dataclasses and paths are converted."""

    def default(o: Any) -> Any:
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        if isinstance(o, Path):
            return str(o)
        if isinstance(o, (set, frozenset)):
            return sorted(o)
        raise TypeError(f"cannot hash {type(o).__name__} into a cache key")

    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=default)


def content_key(**parts: Any) -> str:
    """A short stable hash of `parts` (configs, upstream keys, fingerprints, stage versions)."""
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()[:20]


class Store:
    """Stage outputs under `root/<stage>/<key>/`.

    Args:
        root: the cache folder (default `runs/cache`).
    """

    def __init__(self, root: Path, dry_run: bool = False, verify: bool = True) -> None:
        self.root = Path(root)
        self.plan: list[dict] | None = [] if dry_run else None  # a dry run's `state` of each stage; nothing computed
        self.verify = verify  # whether `state` checks a committed entry against its manifest (every file's sha256)

    def state(self, stage: str, key: str) -> dict:
        """What a run would do with `stage/key`, found without writing anything: reuse it (`cached`, with the
        seconds and memory it took), discard it and compute it again (`damaged`, and why; only with `verify`),
        resume its work folder (`resumes`) or compute it (`to compute`)."""
        path, work = self.path(stage, key), self.root / stage / f"{key}{PARTIAL}"
        about = {"stage": stage, "key": key}
        if self.has(stage, key):
            problem = self.problem(stage, key) if self.verify else None
            if problem:
                return {**about, "state": "damaged", "why": problem}
            try:  # (unverified, meta.json may be gone or broken: the run will find the entry damaged)
                meta = json.loads((path / "meta.json").read_text())
                return {**about, "state": "cached", "seconds": meta.get("seconds"), "peak_rss_gb": meta.get("peak_rss_gb")}
            except (OSError, ValueError, AttributeError) as e:
                return {**about, "state": "damaged", "why": f"meta.json: {e}"}
        if work.is_dir():
            return {**about, "state": "resumes", "why": f"its work folder {work} holds {folder_bytes(work) / 1e6:.1f} MB"}
        return {**about, "state": "to compute"}

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def has(self, stage: str, key: str) -> bool:
        """Whether a committed entry is there (intact or not: see `problem`)."""
        return self.path(stage, key).is_dir()

    def problem(self, stage: str, key: str) -> str | None:
        """What is wrong with the committed entry, naming the file (None: it matches its manifest)."""
        return manifest.problem(self.path(stage, key))

    def discard(self, stage: str, key: str) -> None:
        """Remove an entry: renamed out of its key's place first, so no reader ever sees half of it."""
        doomed = self.root / stage / f"{key}.discarded-{os.getpid()}"
        os.replace(self.path(stage, key), doomed)
        shutil.rmtree(doomed)

    def partial(self, stage: str, key: str) -> Path:
        """The work folder of an unfinished stage; kept across runs so the stage can resume."""
        work = self.root / stage / f"{key}{PARTIAL}"
        work.mkdir(parents=True, exist_ok=True)
        return work

    def commit(self, stage: str, key: str) -> Path:
        """Write the work folder's manifest, move it into place atomically and return the final path."""
        final, work = self.path(stage, key), self.root / stage / f"{key}{PARTIAL}"
        if final.exists():
            shutil.rmtree(work, ignore_errors=True)
            return final
        manifest.write(work)
        os.replace(work, final)
        return final

    @contextlib.contextmanager
    def lock(self, stage: str, key: str) -> Iterator[None]:
        """Hold the entry's lock file `root/.locks/<stage>/<key>.lock` (made if absent; left in place, so
        that every run locks the same file; stage folders hold entries alone). While another process
        holds it, wait: say so once, then every WAIT_REPORT_SECONDS with how long and how big the
        holder's work folder has grown. Where the filesystem has no file locks, warn once and go on
        without one."""
        path = self.root / LOCKS / stage / f"{key}{LOCK}"
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(path)
        try:
            held = acquire(lock, stage, key, path, self.root / stage / f"{key}{PARTIAL}")
        except (NotImplementedError, OSError) as e:
            if isinstance(e, OSError) and e.errno not in NO_LOCKS:
                raise
            held = False
            if self.root not in _WARNED:
                _WARNED.add(self.root)
                print(f"warning: {self.root} has no file locks ({e}); runs sharing this cache at once may each "
                      "compute the same stage", file=sys.stderr, flush=True)
        try:
            yield
        finally:
            if held:
                lock.release()

    def entries(self) -> list[Path]:
        """Every folder under `root/<stage>/`: committed entries, `.partial` work folders and leftovers
        (not the lock files' folder, `.locks`)."""
        return sorted(p for stage in self.root.iterdir() if stage.is_dir() and stage.name != LOCKS
                      for p in stage.iterdir() if p.is_dir()) if self.root.is_dir() else []


def acquire(lock: filelock.BaseFileLock, stage: str, key: str, path: Path, work: Path) -> bool:
    """Take `lock`, waiting as long as another process holds it and saying so (see Store.lock)."""
    try:
        lock.acquire(blocking=False)
        return True
    except filelock.Timeout:
        print(f"[{stage}] waiting for another run to finish this entry ({key}): it holds {path}", flush=True)
    start = time.monotonic()
    while True:
        try:
            lock.acquire(timeout=WAIT_REPORT_SECONDS)
            return True
        except filelock.Timeout:
            print(f"[{stage}] still waiting for another run ({(time.monotonic() - start) / 60:.1f} min; its work "
                  f"folder {work} holds {folder_bytes(work) / 1e6:.1f} MB)", flush=True)


def reserve(path: Path) -> None:
    """Allocate a file's blocks now (a memory-mapped .npy made by `open_memmap` is sparse): a full disk
    is then an OSError (ENOSPC) here, not a SIGBUS that kills the process at a later write through the map."""
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OSError(e.errno, e.strerror, str(path)) from None
            # a filesystem that cannot allocate ahead (EINVAL, EOPNOTSUPP): the map's writes find out


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to `path` via a temp file and rename, so readers never see half a file."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def survey(store: Store) -> list[tuple[Path, str, str]]:
    """Every folder of the cache with its state: ("ok", ""), ("damaged", what is wrong),
    ("unfinished", ...) for a `.partial` work folder, or ("leftover", ...) for anything else."""
    out = []
    for path in store.entries():
        if path.name.endswith(PARTIAL):
            out.append((path, "unfinished", "a stage's work folder (killed, crashed, or running now)"))
        elif "." in path.name:
            out.append((path, "leftover", "not a cache entry"))
        else:
            problem = manifest.problem(path)
            out.append((path, "damaged", problem) if problem else (path, "ok", ""))
    return out


def folder_bytes(path: Path) -> int:
    """The size of every file under `path` (files removed while it counts, e.g. by a running stage, count 0)."""
    total = 0
    for p in path.rglob("*"):
        with contextlib.suppress(OSError):
            total += p.stat().st_size if p.is_file() else 0
    return total
