"""Tasks: where their data lives, which columns hold text and labels, and which metrics score them.

Sources, first match wins: `--data-dir`, `$HARNESS_DATA`, `../shared/data` beside the repository,
then the Hugging Face hub (`datasets.load_dataset("glue", ...)`). Local files are read through
`datasets`' csv builder; every file is checked for its columns and labels before use. Columns are
found by name (with per-task aliases for other layouts), never by position. QQP and MNLI live in
harness/pair_tasks.py, GLUE's other tasks in harness/glue_tasks.py.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets

from harness.errors import HarnessError
from harness.registry import TASKS

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIRED_SPLITS = ("train", "validation")  # the others (second dev set, test sets) are used when present


@dataclass(frozen=True)
class Task:
    """A classification or regression task in GLUE's folder layout.

    Attributes:
        name: registry name (`sst2`).
        glue_dir: folder under the data directory (`SST-2`).
        hub: `datasets.load_dataset` arguments for online users.
        text_columns: one column for single-sentence tasks, two for pairs.
        label_column: class labels (indices, or names from `label_names`), or a regression task's scores.
        num_labels: number of classes; 1 declares a regression task (one output, a real-valued score
            within `score_range`: STS-B's similarity 0..5).
        metrics: metric names understood by harness.metrics; the first one selects checkpoints.
        files: file name of each split inside `glue_dir`, in order; `train` and `validation` are
            required, every other split (a second dev set, test sets) is read when its file exists.
            Splits named `validation*` are dev sets, scored with labels; `test*` may be unlabelled.
        label_names: class names in index order; label columns may hold a name or an index.
        aliases: (other name, column) pairs: what other layouts (the hub) call a column.
        hub_splits: (split, hub split) pairs where the hub's split names differ from ours.
        id_column: a column of example ids, kept in Split.ids when present (optional).
        quoting: how the task's files quote fields (GLUE's TSVs: csv.QUOTE_NONE).
        reader: reads a local folder holding `files`' train file when that folder is not in GLUE's
            layout (QQP's single Quora file): (task, folder) -> splits.
        columns: column names of files that come without a header line (CoLA's train and dev): a file
            whose first line names none of the task's columns is read with these.
        score_range: the lowest and highest score of a regression task.
        submit_names: GLUE's submission format wants label names, not indices (MNLI, QNLI, RTE).
    """

    name: str
    glue_dir: str
    hub: tuple[str, str]
    text_columns: tuple[str, ...]
    label_column: str
    num_labels: int
    metrics: tuple[str, ...]
    files: tuple[tuple[str, str], ...] = (("train", "train.tsv"), ("validation", "dev.tsv"), ("test", "test.tsv"))
    label_names: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()
    hub_splits: tuple[tuple[str, str], ...] = ()
    id_column: str = ""
    quoting: int = csv.QUOTE_NONE
    reader: Callable[[Task, Path], dict[str, Split]] | None = None
    columns: tuple[str, ...] = ()
    score_range: tuple[float, float] | None = None
    submit_names: bool = False

    def __post_init__(self) -> None:
        if self.label_names and len(self.label_names) != self.num_labels:
            raise ValueError(f"task {self.name}: {len(self.label_names)} label_names for {self.num_labels} labels")
        if self.is_regression != (self.score_range is not None):
            raise ValueError(f"task {self.name}: a regression task (num_labels 1) needs score_range, and only it")

    @property
    def is_regression(self) -> bool:
        """One real-valued output (a score), not a choice among classes."""
        return self.num_labels == 1

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2

    @property
    def eval_splits(self) -> tuple[str, ...]:
        """Every split but train, in `files` order (validation first)."""
        return tuple(s for s, _ in self.files if s != "train")

    def names_for(self, column: str) -> tuple[str, ...]:
        """The names `column` may have in a file: its own first, then its aliases."""
        return (column, *(other for other, c in self.aliases if c == column))

    def find(self, column: str, available: Sequence[str]) -> str | None:
        """The name under which `column` appears among `available`, or None."""
        return next((n for n in self.names_for(column) if n in available), None)


def score_name(split: str) -> str:
    """The results key of a split's scores: validation -> dev, validation_mismatched -> dev_mismatched."""
    return split.replace("validation", "dev")


@dataclass
class Split:
    """One split held in memory as plain columns (small: at most a few hundred thousand rows).

    Attributes:
        texts: one tuple of strings per example (one string, or two for pairs).
        labels: class indices (float scores for a regression task), or None when the file has no labels
            (GLUE test sets).
        source: where it came from, for messages and results.
        ids: the task's example ids when its files have them (not part of the fingerprint).
    """

    texts: list[tuple[str, ...]]
    labels: list[int] | list[float] | None
    source: str
    ids: list[str] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int) -> Split:
        """The first n examples (all when n is 0)."""
        if n <= 0 or n >= len(self):
            return self
        return self.take(range(n), f"{self.source} (first {n})")

    def take(self, idx: Sequence[int], source: str) -> Split:
        """The examples at `idx`, in that order, labelled with `source`."""
        def pick(xs: list | None) -> list | None:
            return [xs[i] for i in idx] if xs is not None else None

        return Split(pick(self.texts), pick(self.labels), source, pick(self.ids))

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
    """Read one tab-separated file through `datasets` (plain or .gz) and validate it. Files have a
    header line, except where the task names its `columns` and the first line holds none of its column
    names (CoLA's train and dev).

    Raises:
        HarnessError: missing file, missing columns, or a label that is not a class of the task;
            the message names the file and, for labels, the line.
    """
    if not path.is_file():
        raise HarnessError(f"{path}: file not found")
    wanted = [n for c in (*task.text_columns, task.label_column, task.id_column) if c for n in task.names_for(c)]
    headerless = bool(task.columns) and not set(first_line(path).split("\t")) & set(wanted)
    try:
        ds = datasets.load_dataset(
            "csv",
            data_files=str(path),
            split="train",
            delimiter="\t",
            quoting=task.quoting,
            keep_default_na=False,
            converters={c: str for c in wanted},  # text stays verbatim
            **({"column_names": list(task.columns)} if headerless else {}),
        )
    except Exception as e:  # datasets wraps parser errors in several types
        raise HarnessError(f"{path}: cannot be read as a tab-separated file with a header ({e})") from None
    found, table = ds.column_names, ds.with_format("arrow")  # arrow columns: ~50x faster than ds[c] to list

    def column(name: str) -> list:
        return table[name].to_pylist()

    text = [task.find(c, found) for c in task.text_columns]
    missing = [c for c, name in zip(task.text_columns, text) if name is None]
    if missing:
        raise HarnessError(
            f"{path}: missing column(s) {', '.join(missing)} for task {task.name} (found: {', '.join(found)})"
        )
    texts = list(zip(*(column(c) for c in text)))
    label, labels = task.find(task.label_column, found), None
    if label is not None:
        labels = parse_labels(column(label), task, path, first=1 if headerless else 2)
    elif require_labels:
        names = " or ".join(repr(n) for n in task.names_for(task.label_column))
        raise HarnessError(f"{path}: missing label column {names} (found: {', '.join(found)})")
    id_name = task.find(task.id_column, found) if task.id_column else None
    ids = column(id_name) if id_name else None
    return Split([tuple(t) for t in texts], labels, display_path(path), ids)


def display_path(path: Path) -> str:
    """`path` relative to the repository when it is near it (`../shared/data/...`), so that results
    do not carry one machine's absolute paths; absolute otherwise."""
    rel = os.path.relpath(Path(path).resolve(), REPO_ROOT)
    return rel if not rel.startswith("../..") else str(Path(path).resolve())


def first_line(path: Path) -> str:
    """The first line of a text file (plain or .gz), without a byte-order mark or line end."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", errors="replace") as f:
        return f.readline().rstrip("\r\n")


def parse_labels(raw: Sequence[str], task: Task, path: Path | str, first: int = 2) -> list[int] | list[float]:
    """Class indices from label names (`task.label_names`) or index strings, or a regression task's
    scores; the first bad one is reported with its line number (`first`: the first row's line, 2 after
    a header)."""
    if task.is_regression:
        return parse_scores(raw, task, path, first)
    by_name = {name: i for i, name in enumerate(task.label_names)}
    labels = []
    for i, value in enumerate(raw):
        label = by_name.get(value)
        if label is None:
            try:
                label = int(value)
            except (TypeError, ValueError):
                label = -1
        if not 0 <= label < task.num_labels:
            names = f"one of {', '.join(task.label_names)} or " if task.label_names else ""
            raise HarnessError(
                f"{path}:{i + first}: label {value!r} is not {names}a class index 0..{task.num_labels - 1} for task {task.name}"
            )
        labels.append(label)
    return labels


def parse_scores(raw: Sequence[str], task: Task, path: Path | str, first: int = 2) -> list[float]:
    """A regression task's scores as floats within `task.score_range`; the first bad one is reported
    with its line number."""
    low, high = task.score_range
    out = []
    for i, value in enumerate(raw):
        try:
            x = float(value)
        except (TypeError, ValueError):
            x = math.nan
        if not low <= x <= high:  # NaN fails too
            raise HarnessError(f"{path}:{i + first}: score {value!r} is not a number in {low:g}..{high:g} for task {task.name}")
        out.append(x)
    return out


def read_glue_folder(task: Task, folder: Path) -> dict[str, Split]:
    """Every split of `task.files` in `folder`: train and validation always, the others when present."""
    out = {}
    for split, name in task.files:
        if split in REQUIRED_SPLITS or (folder / name).is_file():
            out[split] = read_tsv(folder / name, task, require_labels=not split.startswith("test"))
    return out


def load_from_hub(task: Task) -> dict[str, Split]:
    """The task's splits from the Hugging Face hub (GLUE's own split), columns found by alias."""
    ds = datasets.load_dataset(*task.hub)
    hub_names = dict(task.hub_splits)
    out = {}
    for split, _ in task.files:
        name = hub_names.get(split, split)
        if name not in ds:
            continue
        found, d = ds[name].column_names, ds[name].with_format("arrow")
        text = [d[task.find(c, found)].to_pylist() for c in task.text_columns]
        labels = [(float if task.is_regression else int)(x) for x in d[task.find(task.label_column, found)].to_pylist()]
        id_name = task.find(task.id_column, found) if task.id_column else None
        has_labels = any(x >= 0 for x in labels)  # the hub marks unlabelled test rows -1 (STS-B's too)
        out[split] = Split(list(zip(*text)), labels if has_labels else None, f"hub {'/'.join(task.hub)} {name}",
                           [str(i) for i in d[id_name].to_pylist()] if id_name else None)
    return out


class NoData(HarnessError):
    """A task's training data is nowhere: not in any local folder, and not on the hub.

    Attributes:
        reason: where it was looked for, without the advice, paths as `display_path` shows them (for
            the "not run" lines of results and reports, which carry no machine's absolute paths).
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


_HUB_UNREACHABLE: list[Exception] = []  # a connection error, once seen: the hub is not asked again in this process


def load_task(name: str, data_dir: str | Path | None = None) -> dict[str, Split]:
    """All available splits of a task: train and validation always, the others when present.

    Raises:
        NoData: no local training file and the hub failed (offline: in about 20 s, after its retries;
            later tasks of the same process do not wait again).
    """
    task: Task = TASKS.get(name)
    folder = find_task_dir(task, data_dir)
    if folder is not None:
        return (task.reader or read_glue_folder)(task, folder)
    try:
        if _HUB_UNREACHABLE:
            raise _HUB_UNREACHABLE[0]
        print(f"[data] {task.name}: no local {task.glue_dir}/{dict(task.files)['train']}; trying the Hugging Face hub "
              f"({'/'.join(task.hub)}; offline, it gives up after about 20 s)", flush=True)
        return load_from_hub(task)
    except Exception as e:
        if isinstance(e, OSError):  # ConnectionError and friends
            _HUB_UNREACHABLE[:] = [e]
        advice = (f"Pass --data-dir DIR (or set $HARNESS_DATA=DIR) where DIR/{task.glue_dir}/{dict(task.files)['train']} "
                  "exists, or run online to use the hub.")
        raise NoData(f"no data for task {task.name}: {no_data_reason(task, data_dir, e, str)}. {advice}",
                     no_data_reason(task, data_dir, e)) from None


def no_data_reason(task: Task, data_dir: str | Path | None, error: Exception,
                   show: Callable[[Path], str] = display_path) -> str:
    """Every place looked in (each path as `show` writes it), what a partial local copy lacks, and the
    hub's error, in one line."""
    train = f"{task.glue_dir}/{dict(task.files)['train']}"
    looked = [f"{how}: {show(root / task.glue_dir)}" for how, root in candidate_dirs(data_dir)]
    partial = [root / task.glue_dir for _, root in candidate_dirs(data_dir) if (root / task.glue_dir).is_dir()]
    has = ""
    if partial:
        present = sorted(p.name for p in partial[0].iterdir() if p.is_file() and not p.name.endswith(".md"))
        has = f" ({display_path(partial[0])} has {', '.join(present) or 'no data files'} but no training file)"
    return (f"no {train} in {'; '.join(looked)}{has}; "
            f"and the Hugging Face hub ({'/'.join(task.hub)}) failed: {type(error).__name__}")
