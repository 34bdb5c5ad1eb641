"""Task data: the real SST-2 files, and clear errors for bad or missing input."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.core.registry import TASKS
from harness.data import tasks
from harness.data.tasks import load_task, read_tsv

SST2 = TASKS.get("sst2")


def write(path: Path, text: str) -> Path:
    """Write a small TSV and return its path."""
    path.write_text(text)
    return path


def test_real_sst2_splits(data_root: Path) -> None:
    """The shared SST-2 has 67,349 train and 872 dev examples and an unlabelled test set."""
    splits = load_task("sst2")
    assert len(splits["train"]) == 67_349 and len(splits["validation"]) == 872
    assert set(splits["train"].labels) == {0, 1} and len(splits["validation"].labels) == 872
    assert "test" in splits and len(splits["test"]) > 0 and splits["test"].labels is None
    source = Path(tasks.REPO_ROOT, splits["train"].source).resolve()
    assert source == (data_root / "SST-2" / "train.tsv").resolve()


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    """A TSV without `sentence` is an error naming the file and the column."""
    path = write(tmp_path / "x.tsv", "text\tlabel\nhello world\t1\n")
    with pytest.raises(HarnessError) as err:
        read_tsv(path, SST2, require_labels=True)
    assert str(path) in str(err.value) and "sentence" in str(err.value)


def test_missing_labels_when_required(tmp_path: Path) -> None:
    """A training file must have labels; a prediction input need not."""
    path = write(tmp_path / "x.tsv", "sentence\nhello world\n")
    with pytest.raises(HarnessError, match="label"):
        read_tsv(path, SST2, require_labels=True)
    assert read_tsv(path, SST2, require_labels=False).labels is None


def test_non_numeric_label_names_line(tmp_path: Path) -> None:
    """A bad label is reported as file:line (header is line 1)."""
    path = write(tmp_path / "x.tsv", "sentence\tlabel\ngood\t1\nbad\tnegative\nfine\t0\n")
    with pytest.raises(HarnessError, match="negative") as err:
        read_tsv(path, SST2, require_labels=True)
    assert f"{path}:3" in str(err.value)


def test_out_of_range_label(tmp_path: Path) -> None:
    """A label that is not a class index of the task is an error."""
    path = write(tmp_path / "x.tsv", "sentence\tlabel\ngood\t1\nbad\t7\n")
    with pytest.raises(HarnessError) as err:
        read_tsv(path, SST2, require_labels=True)
    assert f"{path}:3" in str(err.value) and "7" in str(err.value)


def test_fractional_label_is_an_error(tmp_path: Path) -> None:
    """A label like 1.5 is not a class index and must not be truncated to 1."""
    path = write(tmp_path / "x.tsv", "sentence\tlabel\ngood\t0\nbad\t1.5\n")
    with pytest.raises(HarnessError):
        read_tsv(path, SST2, require_labels=True)


def test_text_is_kept_verbatim(tmp_path: Path) -> None:
    """Sentences that look like numbers are read as written, not re-typed."""
    path = write(tmp_path / "x.tsv", "sentence\tlabel\n1.50\t0\n2\t1\n")
    assert read_tsv(path, SST2, require_labels=True).texts == [("1.50",), ("2",)]


def test_missing_file(tmp_path: Path) -> None:
    """A path that does not exist is an error naming it."""
    with pytest.raises(HarnessError, match="not found"):
        read_tsv(tmp_path / "nope.tsv", SST2, require_labels=False)


def test_no_data_names_the_one_place_looked_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit location is the only one looked in: --data-dir (over $HARNESS_DATA), else $HARNESS_DATA,
    each without the hub; only with neither does the default lead on to the hub, and the error names both."""
    hub_calls = []

    def offline(task: object) -> None:
        hub_calls.append(task)
        raise OSError("offline")

    repo = tmp_path / "repo"
    empty, env_dir = tmp_path / "empty", tmp_path / "env"
    empty.mkdir()
    env_dir.mkdir()
    monkeypatch.setattr(tasks, "REPO_ROOT", repo)
    monkeypatch.setattr(tasks, "load_from_hub", offline)
    monkeypatch.setenv("HARNESS_DATA", str(env_dir))
    with pytest.raises(tasks.NoData) as err:
        load_task("sst2", data_dir=empty)
    msg = str(err.value)
    assert f"no SST-2/train.tsv in --data-dir {empty} ({empty} has no folders)" in msg and "leave out --data-dir" in msg
    assert str(env_dir) not in msg and str(tmp_path / "shared") not in msg and not hub_calls
    with pytest.raises(tasks.NoData) as err:
        load_task("sst2")
    assert f"no SST-2/train.tsv in $HARNESS_DATA {env_dir}" in str(err.value) and "unset $HARNESS_DATA" in str(err.value)
    assert not hub_calls
    monkeypatch.delenv("HARNESS_DATA")
    with pytest.raises(tasks.NoData) as err:
        load_task("sst2")
    msg = str(err.value)
    assert f"in default: {tmp_path / 'shared' / 'data' / 'SST-2'}; and the Hugging Face hub (glue/sst2) failed: OSError" in msg
    assert "--data-dir" in msg and "$HARNESS_DATA" in msg and str(empty) not in msg and len(hub_calls) == 1


def test_missing_data_dir_is_an_error(tmp_path: Path) -> None:
    """An explicit --data-dir that does not exist is reported, not silently replaced by the default."""
    missing = tmp_path / "nope"
    with pytest.raises(HarnessError, match=f"--data-dir {missing}: no such folder"):
        load_task("sst2", missing)
