"""Content-keyed stage outputs: key = hash of the canonical JSON of everything that determines them.

A stage writes into `partial(stage, key)`, a folder that survives a killed run so that long stages
can resume from it, and calls `commit` when done, which renames it into place atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any


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
        return self.path(stage, key).is_dir()

    def partial(self, stage: str, key: str) -> Path:
        """The work folder of an unfinished stage; kept across runs so the stage can resume."""
        work = self.root / stage / f"{key}.partial"
        work.mkdir(parents=True, exist_ok=True)
        return work

    def commit(self, stage: str, key: str) -> Path:
        """Atomically move the finished work folder into place and return the final path."""
        final = self.path(stage, key)
        if final.exists():
            shutil.rmtree(self.root / stage / f"{key}.partial", ignore_errors=True)
            return final
        os.replace(self.root / stage / f"{key}.partial", final)
        return final


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to `path` via a temp file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
