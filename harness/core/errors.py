"""The exceptions the CLI turns into one line instead of a traceback, and filesystem faults turned into them.

A full disk, a read-only or forbidden folder, or a folder that vanished mid-run ends a run with one
`error: ...` line naming the path and what to do (`DiskFault`), whichever library met it: an
`OSError`, a `shutil.Error` (a list of failed copies, each with the OS error's text) or an error
that keeps only that text (safetensors: `SafetensorError: ... No space left on device (os error 28)`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path


class HarnessError(Exception):
    """A user-facing error: bad input, missing data, unknown names. The message says what and where."""


class DiskFault(HarnessError):
    """The filesystem refused a write: full, read-only, forbidden, or the folder vanished. The message
    names the path and what to do."""


# errno -> (what happened, doing what, what to do; "or choose another --out" is appended when a folder's option is known)
FAULTS = {
    errno.ENOSPC: ("no space left on device", "writing", "free space on that filesystem"),
    errno.EDQUOT: ("disk quota exceeded", "writing", "free space within your quota"),
    errno.EROFS: ("read-only filesystem", "writing", "remount it writable"),
    errno.EACCES: ("permission denied", "on", "check its permissions"),
    errno.EPERM: ("operation not permitted", "on", "check its permissions"),
}
_OS_ERROR_TEXT = re.compile(r"\[errno (\d+)\]|\(os error (\d+)\)|Os \{ code: (\d+)", re.IGNORECASE)


def _code_in(text: str) -> int | None:
    """The errno an error's text quotes: `[Errno 28] ...` (Python), `(os error 28)` (Rust's io::Error)."""
    found = _OS_ERROR_TEXT.search(text)
    return int(next(g for g in found.groups() if g)) if found else None


def os_fault(exc: BaseException) -> tuple[int, str | None] | None:
    """(errno, path or None) of the OS error behind `exc`, looking into shutil.Error's list of failed
    copies (the path is the copy's destination), errors that keep only the OS error's text, and causes."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
            for item in exc.args[0]:
                if isinstance(item, tuple) and len(item) == 3 and _code_in(str(item[2])) is not None:
                    return _code_in(str(item[2])), str(item[1])
        elif isinstance(exc, OSError) and exc.errno is not None:
            return exc.errno, None if exc.filename is None else os.fsdecode(exc.filename)
        elif _code_in(str(exc)) is not None:
            return _code_in(str(exc)), None
        exc = exc.__cause__ or exc.__context__
    return None


def _under(path: str, folder: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def describe(exc: BaseException, folder: Path | None = None, option: str | None = None) -> str | None:
    """One line for a filesystem fault behind `exc`, naming the path and what to do; None when `exc` is
    none (or, given `folder`, one met outside it: that is for an enclosing context to say).

    Args:
        folder: the folder being written (a path-less fault is placed there); a file or folder under
            it that is missing while its folder is gone too is reported as that folder having vanished.
        option: the command-line option that chose `folder` (`--out`, `--cache-dir`), named in the advice.
    """
    found = os_fault(exc)
    if found is None:
        return None
    code, path = found
    if folder is not None and path is not None and not _under(path, folder):
        return None
    if code == errno.ENOENT and folder is not None:
        above = [p for p in reversed(Path(path).parents) if _under(str(p), folder)] if path else []
        gone = next((p for p in (Path(folder), *above) if not p.exists()), None)  # the topmost folder missing
        if gone is None:
            return None  # a file missing in a folder that is there: not a fault of the filesystem
        return vanished(gone, option)
    if code not in FAULTS:
        return None
    what, doing, todo = FAULTS[code]
    return f"{what} {doing} {path or folder or 'a file'} ({todo}{f' or choose another {option}' if option else ''})"


@contextlib.contextmanager
def writing(folder: Path, option: str) -> Iterator[None]:
    """Inside it, a filesystem fault met in `folder` (or one that names no path) becomes a `DiskFault`
    (see `describe`); other errors, and faults met elsewhere, pass on unchanged.

    Args:
        folder: what the enclosed code writes.
        option: the command-line option that chose it, e.g. `--cache-dir`.
    """
    try:
        yield
    except HarnessError:
        raise
    except Exception as e:
        message = describe(e, folder, option)
        if message is None:
            raise
        raise DiskFault(message) from e


@contextlib.contextmanager
def watched(folder: Path, option: str, make: bool = True) -> Iterator[Callable[[], None]]:
    """Make `folder` (and its parents) and hold it open while the body writes into it. Yields a check
    that raises a `DiskFault` when the folder was removed meanwhile, even if a later write made it
    again (the open folder keeps its inode from being reused). With `make` False, nothing is made and
    the check does nothing (torchrun's ranks other than 0, which write nothing there).

    Args:
        option: the command-line option that chose it, e.g. `--out`.
    """
    if not make:
        yield lambda: None
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)

    def check() -> None:
        held = os.fstat(fd)
        try:
            now = os.stat(folder)
        except FileNotFoundError:
            now = None
        if held.st_nlink == 0 or now is None or (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            raise DiskFault(vanished(folder, option))

    try:
        yield check
    finally:
        os.close(fd)


def vanished(folder: Path, option: str | None) -> str:
    return (f"folder {folder} vanished while this run was writing it (something removed it: rerun"
            + (f", with {option} on a folder that nothing else removes)" if option else ")"))
