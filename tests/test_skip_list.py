"""`pytest --expected-skips FILE` (.ci/run): a run whose skipped tests differ from the committed list fails, naming
each difference; the same skips pass; --write-skips writes the list."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from skip_list import problems, read  # noqa: E402


def pytest_in(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "skip_list", "-p", "no:cacheprovider",
                           "--rootdir", str(folder), "-c", os.devnull, *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_changed_skip_fails_the_run(tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text(textwrap.dedent("""
        import pytest

        def test_runs():
            assert True

        @pytest.mark.skip(reason="needs a display")
        def test_window():
            pass
    """))
    listed = tmp_path / "skips.txt"
    wrote = pytest_in(tmp_path, "--expected-skips", str(listed), "--write-skips")
    assert wrote.returncode == 0, wrote.stdout
    assert listed.read_text().splitlines()[1:] == ["test_a.py::test_window | needs a display"]
    same = pytest_in(tmp_path, "--expected-skips", str(listed))
    assert same.returncode == 0 and f"skips as committed in {listed}: 1" in same.stdout, same.stdout
    listed.write_text("test_a.py::test_window | needs X11\n")  # the reason changed
    changed = pytest_in(tmp_path, "--expected-skips", str(listed))
    assert changed.returncode == 1, changed.stdout
    assert "new skip: test_a.py::test_window | needs a display" in changed.stdout
    assert "no longer skipped (or not run): test_a.py::test_window | needs X11" in changed.stdout
    listed.write_text("")  # a skip the list does not have
    assert pytest_in(tmp_path, "--expected-skips", str(listed)).returncode == 1
    missing = pytest_in(tmp_path, "--expected-skips", str(tmp_path / "none.txt"))
    assert missing.returncode == 4 and "no such file" in missing.stderr


def test_an_optional_skip_may_run_but_not_change_its_reason(tmp_path: Path) -> None:
    """A GPU machine runs the CUDA tests: an `optional: ` line may be absent from a run, not replaced."""
    listed = tmp_path / "skips.txt"
    listed.write_text("# comment\noptional: t.py::test_gpu | needs CUDA\nt.py::test_x | needs X11\n")
    required, optional = read(listed)
    assert (required, optional) == (["t.py::test_x | needs X11"], ["t.py::test_gpu | needs CUDA"])
    assert problems(["t.py::test_x | needs X11"], required, optional) == []  # the GPU test ran
    assert problems(["t.py::test_gpu | needs CUDA", "t.py::test_x | needs X11"], required, optional) == []
    assert problems(["t.py::test_gpu | needs a GPU", "t.py::test_x | needs X11"], required, optional) == \
        ["new skip: t.py::test_gpu | needs a GPU"]
