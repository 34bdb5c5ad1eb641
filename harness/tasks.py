"""Tasks: where their data lives, which columns hold text and labels, and which metrics score them.

Sources, first match wins: `--data-dir`, `$HARNESS_DATA`, `../shared/data` beside the repository,
then the Hugging Face hub (`datasets.load_dataset("glue", ...)`). Local files are read through
`datasets`' csv builder; every file is checked for its columns and labels before use.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import datasets

from harness.errors import HarnessError
from harness.registry import TASKS

REPO_ROOT = Path(__file__).resolve().parent.parent
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Task:
    """A classification task in GLUE's folder layout.

    Attributes:
        name: registry name (`sst2`).
        glue_dir: folder under the data directory (`SST-2`).
        hub: `datasets.load_dataset` arguments for online users.
        text_columns: one column for single-sentence tasks, two for pairs.
        label_column: integer class labels.
        num_labels: number of classes.
        metrics: metric names understood by harness.metrics.
        files: file name of each split inside `glue_dir`.
    """

    name: str
    glue_dir: str
    hub: tuple[str, str]
    text_columns: tuple[str, ...]
    label_column: str
    num_labels: int
    metrics: tuple[str, ...]
    files: tuple[tuple[str, str], ...] = (("train", "train.tsv"), ("validation", "dev.tsv"), ("test", "test.tsv"))

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2


@dataclass
class Split:
    """One split held in memory as plain columns (small: at most a few hundred thousand rows).

    Attributes:
        texts: one tuple of strings per example (one string, or two for pairs).
        labels: integer labels, or None when the file has no labels (GLUE test sets).
        source: where it came from, for messages and results.
    """

    texts: list[tuple[str, ...]]
    labels: list[int] | None
    source: str

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int) -> Split:
        """The first n examples (all when n is 0)."""
        if n <= 0 or n >= len(self):
            return self
        labels = self.labels[:n] if self.labels is not None else None
        return Split(self.texts[:n], labels, f"{self.source} (first {n})")

    def fingerprint(self) -> str:
        """A hash of the content, used in cache keys."""
        h = hashlib.sha256()
        for i, t in enumerate(self.texts):
            h.update("\x1f".join(t).encode())
            h.update(b"\x1e" + (str(self.labels[i]) if self.labels is not None else "").encode())
        return h.hexdigest()[:20]


TASKS.add(
    "sst2",
    Task(
        name="sst2",
        glue_dir="SST-2",
        hub=("glue", "sst2"),
        text_columns=("sentence",),
        label_column="label",
        num_labels=2,
        metrics=("accuracy",),
    ),
)


def candidate_dirs(data_dir: str | Path | None) -> list[tuple[str, Path]]:
    """The local places looked in, in order, each with how it was chosen."""
    out = []
    if data_dir:
        out.append(("--data-dir", Path(data_dir)))
    if os.environ.get("HARNESS_DATA"):
        out.append(("$HARNESS_DATA", Path(os.environ["HARNESS_DATA"])))
    for how, root in out:
        if not root.is_dir():
            raise HarnessError(f"{how} {root}: no such folder")
    out.append(("default", REPO_ROOT.parent / "shared" / "data"))
    return out


def find_task_dir(task: Task, data_dir: str | Path | None) -> Path | None:
    """The first local folder holding the task's training file, or None."""
    for _, root in candidate_dirs(data_dir):
        if (root / task.glue_dir / dict(task.files)["train"]).is_file():
            return root / task.glue_dir
    return None


def read_tsv(path: Path, task: Task, require_labels: bool) -> Split:
    """Read one GLUE-style TSV through `datasets` and validate it.

    Raises:
        HarnessError: missing file, missing columns, or a label that is not a class index;
            the message names the file and, for labels, the line.
    """
    if not path.is_file():
        raise HarnessError(f"{path}: file not found")
    try:
        ds = datasets.load_dataset(
            "csv",
            data_files=str(path),
            split="train",
            delimiter="\t",
            quoting=csv.QUOTE_NONE,
            keep_default_na=False,
            converters={c: str for c in (*task.text_columns, task.label_column)},  # text stays verbatim
        )
    except Exception as e:  # datasets wraps parser errors in several types
        raise HarnessError(f"{path}: cannot be read as a tab-separated file with a header ({e})") from None
    missing = [c for c in task.text_columns if c not in ds.column_names]
    if missing:
        raise HarnessError(
            f"{path}: missing column(s) {', '.join(missing)} for task {task.name} "
            f"(found: {', '.join(ds.column_names)})"
        )
    texts = list(zip(*(ds[c] for c in task.text_columns)))
    labels = None
    if task.label_column in ds.column_names:
        labels = parse_labels(ds[task.label_column], task, path)
    elif require_labels:
        raise HarnessError(f"{path}: missing label column {task.label_column!r} (found: {', '.join(ds.column_names)})")
    return Split([tuple(t) for t in texts], labels, display_path(path))


def display_path(path: Path) -> str:
    """`path` relative to the repository when it is near it (`../shared/data/...`), so that results
    do not carry one machine's absolute paths; absolute otherwise."""
    rel = os.path.relpath(Path(path).resolve(), REPO_ROOT)
    return rel if not rel.startswith("../..") else str(Path(path).resolve())


def parse_labels(raw: list[str], task: Task, path: Path | str) -> list[int]:
    """Integer class labels; the first bad one is reported with its line number (header = line 1)."""
    labels = []
    for i, value in enumerate(raw):
        try:
            label = int(value)
        except (TypeError, ValueError):
            label = -1
        if not 0 <= label < task.num_labels:
            raise HarnessError(
                f"{path}:{i + 2}: label {value!r} is not a class index 0..{task.num_labels - 1} for task {task.name}"
            )
        labels.append(label)
    return labels


def load_from_hub(task: Task) -> dict[str, Split]:
    ds = datasets.load_dataset(*task.hub)
    out = {}
    for split in SPLITS:
        if split in ds:
            d = ds[split]
            labels = [int(x) for x in d[task.label_column]]
            has_labels = any(x >= 0 for x in labels)
            texts = list(zip(*(d[c] for c in task.text_columns)))
            out[split] = Split([tuple(t) for t in texts], labels if has_labels else None, f"hub {'/'.join(task.hub)}")
    return out


def load_task(name: str, data_dir: str | Path | None = None) -> dict[str, Split]:
    """All available splits of a task: train and validation always, test when present."""
    task: Task = TASKS.get(name)
    folder = find_task_dir(task, data_dir)
    if folder is not None:
        files = dict(task.files)
        out = {
            "train": read_tsv(folder / files["train"], task, require_labels=True),
            "validation": read_tsv(folder / files["validation"], task, require_labels=True),
        }
        if (folder / files["test"]).is_file():
            out["test"] = read_tsv(folder / files["test"], task, require_labels=False)
        return out
    looked = [f"{how}: {root / task.glue_dir}" for how, root in candidate_dirs(data_dir)]
    try:
        return load_from_hub(task)
    except Exception as e:
        raise HarnessError(
            f"no data for task {task.name}: looked in {'; '.join(looked)}; "
            f"and the Hugging Face hub ({'/'.join(task.hub)}) failed: {type(e).__name__}. "
            "Pass --data-dir DIR holding GLUE's folders, or set $HARNESS_DATA."
        ) from None
