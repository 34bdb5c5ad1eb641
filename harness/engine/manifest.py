"""Folders that prove themselves: `manifest.json` lists every file's size and sha256.

A cache entry and a saved model folder are trusted only when every file its manifest lists is there
with that size and that hash. The manifest is written last and atomically, so a folder without one is
unfinished (or damaged) by definition. Files added later (an ONNX export beside a model) are added to
the manifest once written. Sizes are compared on every check; a file's hash is computed once per
process for a given (path, size, mtime, inode): a cache entry checked again in the same run costs
only a `stat`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

NAME = "manifest.json"
FORMAT = 1
_HASHED: dict[tuple, str] = {}  # (path, size, mtime_ns, inode) -> sha256, for this process


def sha256(path: Path) -> str:
    """The file's sha256 (hex), memoised per process while the file is unchanged on disk."""
    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if memo not in _HASHED:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        _HASHED[memo] = h.hexdigest()
    return _HASHED[memo]


def folder_digest(folder: Path) -> str:
    """One sha256 over every file of `folder` (relative names and contents): equal for equal contents
    wherever the folder lies, different once any file changes (a local teacher checkpoint's cache key)."""
    lines = "".join(f"{rel}\0{sha256(folder / rel)}\n" for rel in _files(folder))
    return hashlib.sha256(lines.encode()).hexdigest()


def _entry(path: Path) -> dict:
    return {"size": path.stat().st_size, "sha256": sha256(path)}


def _files(folder: Path) -> list[str]:
    """Every file under `folder` (relative, sorted), except the manifest and temp files (`.name.tmp*`)."""
    out = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and rel != NAME and not (path.name.startswith(".") and ".tmp" in path.name):
            out.append(rel)
    return sorted(out)


def _write(folder: Path, files: dict[str, dict]) -> None:
    tmp = folder / f".{NAME}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps({"format": FORMAT, "files": files}, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, folder / NAME)


def write(folder: Path) -> None:
    """Record every file now under `folder` (sub-folders' manifests included) in its manifest."""
    _write(folder, {rel: _entry(folder / rel) for rel in _files(folder)})


def read(folder: Path) -> dict[str, dict]:
    """The files the manifest lists ({relative path: {size, sha256}}).

    Raises:
        ValueError: no manifest, or one that is not a manifest (the message says which).
    """
    path = folder / NAME
    if not path.is_file():
        raise ValueError(f"no {NAME} (unfinished, written by an older harness version, or damaged)")
    try:
        files = json.loads(path.read_text())["files"]
        if not all(isinstance(v["size"], int) and isinstance(v["sha256"], str) for v in files.values()):
            raise ValueError
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        raise ValueError(f"{NAME} is damaged (not a manifest)") from None
    return files


def add(folder: Path, *names: str) -> None:
    """Add files written into an already complete `folder` (e.g. model.onnx) to its manifest."""
    files = read(folder)
    _write(folder, {**files, **{name: _entry(folder / name) for name in names}})


def lists(folder: Path, name: str) -> bool:
    """Whether the manifest of `folder` lists `name` (False without a readable manifest)."""
    try:
        return name in read(folder)
    except ValueError:
        return False


def problem(folder: Path) -> str | None:
    """What is wrong with `folder`, in a few words naming the file, or None when every listed file is
    there with its recorded size and hash."""
    try:
        files = read(folder)
    except ValueError as e:
        return str(e)
    for rel, want in sorted(files.items()):
        path = folder / rel
        if not path.is_file():
            return f"{rel} is missing"
        size = path.stat().st_size
        if size != want["size"]:
            return f"{rel} has {size:,} bytes, {want['size']:,} expected (truncated or overwritten)"
    for rel, want in sorted(files.items()):
        if sha256(folder / rel) != want["sha256"]:
            return f"{rel} does not match its sha256 (its bytes changed)"
    return None
