"""Content-keyed stage outputs: key = hash of the canonical JSON of everything that determines them.

A stage writes into `partial(stage, key)`, a folder that survives a killed run so that long stages
can resume from it, and calls `commit` when done, which writes the folder's manifest (every file's
size and sha256, harness/manifest.py) and renames it into place atomically. An entry is reused only
when it matches its manifest (`problem`); a damaged one is discarded and its stage recomputed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from harness import manifest

PARTIAL = ".partial"


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

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

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

    def entries(self) -> list[Path]:
        """Every folder under `root/<stage>/`: committed entries, `.partial` work folders and leftovers."""
        return sorted(p for stage in self.root.iterdir() if stage.is_dir() for p in stage.iterdir() if p.is_dir()) \
            if self.root.is_dir() else []


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to `path` via a temp file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


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
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
