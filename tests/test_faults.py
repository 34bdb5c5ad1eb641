"""A full disk, a read-only or a vanished folder, for --out or --cache-dir, ends a run with one line
naming the path and what to do (exit status 3), no traceback, and nothing half-written.

Faults are injected where the real ones arise: safetensors' own error (it keeps only the OS error's
text), shutil.copytree's list of failed copies, an OSError from mkdir. The runs are the tiny in-process
ones of test_integrity.py, sharing one cache: the first fails at its last stage, so the next reuse
the teacher, transfer set and labels. (Checked by hand on small tmpfs mounts too: full, read-only.)
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest
from safetensors import SafetensorError

from harness import cli, pipeline
from harness.core.errors import DiskFault, describe
from harness.engine import wordmodel
from harness.engine.cache import Store
from harness.engine.stages import cached

SETS = ["teacher.name=hf_tiny", "train_limit=300", "dev_limit=100", "augment.n_iter=2", "measure.enabled=false",
        "measure.threads=1", "ablations="]
FULL = "Error while serializing: I/O error: No space left on device (os error 28)"  # safetensors' words


def run(out: Path, cache: Path) -> int:
    """A tiny SST-2 run through the command line's own entry point, in this process."""
    return cli.main(["run", "--preset", "smoke", "--tasks", "sst2", "--students", "bilstm", "--device", "cpu",
                     *[a for s in SETS for a in ("--set", s)], "--out", str(out), "--cache-dir", str(cache)])


def one_error_line(err: str, *needles: str) -> str:
    """The run's stderr ends with its one `error:` line (progress bars come before it), with no traceback."""
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err[-2000:]
    line = errors[0][errors[0].index("error:"):]
    for needle in needles:
        assert needle in line, line
    return line


def leftovers(folder: Path) -> list[Path]:
    """Half-made things: stage work folders, temporary copies and files."""
    return [p for p in folder.rglob("*") if p.name.endswith(".partial") or ".tmp" in p.name]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults") / "cache"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.delenv("HARNESS_DATA", raising=False)


def test_full_cache_is_one_line(cache: Path, tmp_path: Path, data_root: Path, one_thread: None,
                                monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """The student's weights meet a full disk in the cache: one line naming its work folder and
    --cache-dir, exit 3; the stage's work folder is gone, the stages before it are committed, and the
    output folder this run made is removed."""
    def full(*args, **kwargs):
        raise SafetensorError(FULL)

    monkeypatch.setattr(wordmodel, "save_file", full)
    assert run(tmp_path / "out", cache) == 3
    line = one_error_line(capsys.readouterr().err, "error: no space left on device writing ", str(cache / "student"),
                          ".partial", "free space on that filesystem or choose another --cache-dir")
    assert line.count("\n") == 0
    assert not leftovers(cache) and not any((cache / "student").iterdir())
    assert all(any((cache / stage).glob("*/manifest.json")) for stage in ("teacher", "augment", "label"))
    assert not (tmp_path / "out").exists()


def test_full_output_is_one_line(cache: Path, tmp_path: Path, data_root: Path, one_thread: None,
                                 monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """Copying the teacher into an existing --out meets a full disk (shutil.copytree's error list):
    one line naming the file and --out, exit 3; the folder holds what it held, no half-made copy."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    copyfile = shutil.copyfile

    def full(src, dst, *args, **kwargs):
        if Path(dst).is_relative_to(out) and Path(dst).name == "model.safetensors":
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return copyfile(src, dst, *args, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", full)
    assert run(out, cache) == 3
    one_error_line(capsys.readouterr().err, "error: no space left on device writing ", str(out / "models" / "sst2"),
                   "model.safetensors", "choose another --out")
    assert not leftovers(out) and not (out / "results.json").exists()
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["notes.txt"]


def test_vanished_output_is_one_line(cache: Path, tmp_path: Path, data_root: Path, one_thread: None,
                                     monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """--out removed while the run goes on (a later copy makes it again): one line, exit 3, no results."""
    out, copy_model = tmp_path / "out", pipeline.copy_model

    def remove_then_copy(*args, **kwargs):
        shutil.rmtree(out, ignore_errors=True)
        return copy_model(*args, **kwargs)

    monkeypatch.setattr(pipeline, "copy_model", remove_then_copy)
    assert run(out, cache) == 3
    one_error_line(capsys.readouterr().err, f"error: folder {out} vanished while this run was writing it", "--out")
    assert not (out / "results.json").exists()


def test_read_only_cache_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only --cache-dir: the stage's first write (its lock file's folder) is a DiskFault naming it."""
    root = tmp_path / "cache"
    mkdir = Path.mkdir

    def read_only(self: Path, *args, **kwargs):
        if self.is_relative_to(root):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(DiskFault) as caught:
        cached(Store(root), "augment", "k", lambda work: {})
    assert str(caught.value) == (f"read-only filesystem writing {root / '.locks' / 'augment'} "
                                 "(remount it writable or choose another --cache-dir)")


def test_a_fault_elsewhere_is_one_line_too(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """A full disk met outside --out and --cache-dir (a temporary folder, say) is one line as well."""
    def full(args) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "scratch/x.onnx")

    monkeypatch.setattr(cli, "cmd_ls", full)
    assert cli.main(["ls", "tasks"]) == 3
    assert capsys.readouterr().err == "error: no space left on device writing scratch/x.onnx (free space on that filesystem)\n"


def test_describe(tmp_path: Path) -> None:
    """Which errors are faults, and the path each names."""
    folder = tmp_path / "out"
    folder.mkdir()
    copy_error = shutil.Error([("/src/a", str(folder / "a"), f"[Errno 28] No space left on device: '/src/a' -> '{folder}/a'")])
    assert describe(copy_error, folder, "--out") == \
        f"no space left on device writing {folder / 'a'} (free space on that filesystem or choose another --out)"
    assert describe(SafetensorError(FULL), folder, "--out") == \
        f"no space left on device writing {folder} (free space on that filesystem or choose another --out)"
    quota = OSError(errno.EDQUOT, "Disk quota exceeded", str(folder / "b"))
    assert describe(quota, folder, "--cache-dir").startswith(f"disk quota exceeded writing {folder / 'b'} (")
    assert describe(OSError(errno.ENOSPC, "full", "/elsewhere/c"), folder, "--out") is None  # an enclosing context's
    wrapped = RuntimeError("save failed")
    wrapped.__cause__ = OSError(errno.EROFS, "Read-only file system", str(folder / "d"))
    assert describe(wrapped, folder, "--out").startswith(f"read-only filesystem writing {folder / 'd'}")
    # a missing file: the folder's vanishing is a fault, a file missing from a folder that is there is a bug
    missing = FileNotFoundError(errno.ENOENT, "No such file or directory", str(folder / "gone" / "e"))
    assert describe(missing, folder, "--out").startswith(f"folder {folder / 'gone'} vanished while this run was writing it")
    assert describe(FileNotFoundError(errno.ENOENT, "No such file", str(folder / "f")), folder, "--out") is None
    assert describe(missing) is None  # outside a folder's context: not a filesystem fault
    assert describe(ValueError("bad input")) is None
