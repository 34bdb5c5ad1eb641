"""Tasks: where their data lives, which columns hold text and labels, and which metrics score them.

Where data is looked for: a location given explicitly is the only one looked in: `--data-dir` when
given, else `$HARNESS_DATA` when set; a task whose training file is not there is an error (NoData)
naming what is missing there, and neither `../shared/data` nor the hub is tried. Only when neither was
given: `../shared/data` beside the repository, then the Hugging Face hub
(`datasets.load_dataset("glue", ...)`). NLTK's tagger is looked for in the data location and then in
`../shared/data` (`nltk_roots`), since a user's data folder often holds only the task folders.

Local files are read strictly by harness/data/tsv.py (one row per line; a file that does not parse is an
error naming the file, the line and the problem), then checked for the task: columns, labels, empty
texts, unique ids. Columns are found by name (with per-task aliases for other layouts), never by
position. QQP and MNLI live in harness/data/pair_tasks.py, GLUE's other tasks in harness/data/glue_tasks.py.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import HarnessError
from harness.core.registry import TASKS
from harness.data.gold_labels import parse_labels
from harness.data.split import Split
from harness.data.tsv import read_table

REPO_ROOT = Path(__file__).resolve().parents[2]
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
        metrics: metric names understood by harness.core.metrics; the first one selects checkpoints.
        files: file name of each split inside `glue_dir`, in order; `train` and `validation` are
            required, every other split (a second dev set, test sets) is read when its file exists.
            Splits named `validation*` are dev sets, scored with labels; `test*` may be unlabelled.
        label_names: class names in index order; label columns may hold a name or an index.
        aliases: (other name, column) pairs: what other layouts (the hub) call a column.
        hub_splits: (split, hub split) pairs where the hub's split names differ from ours.
        id_column: a column of example ids, kept in Split.ids when present (optional); a repeated id is
            an error.
        quoting: how the task's files quote fields (GLUE's TSVs: csv.QUOTE_NONE).
        reader: reads a local folder holding `files`' train file when that folder is not in GLUE's
            layout (QQP's single Quora file): (task, folder) -> splits.
        columns: column names of files that come without a header line (CoLA's train and dev): a file
            whose first line names none of the task's columns is read with these.
        score_range: the lowest and highest score of a regression task.
        submit_names: GLUE's submission format wants label names, not indices (MNLI, QNLI, RTE).
        empty_texts: names of files from a known source that has rows with an empty (or all-whitespace)
            text: read_tsv returns those rows, and the task's reader drops and counts them (QQP's Quora
            file). Anywhere else in training and scored data an empty text is an error; a file given to
            `harness predict` keeps them (read_for_prediction).
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
    empty_texts: tuple[str, ...] = ()

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


TASKS.add("sst2", Task(name="sst2", glue_dir="SST-2", hub=("glue", "sst2"), text_columns=("sentence",), label_column="label",
                       num_labels=2, metrics=("accuracy",)))


def default_data_dir() -> Path:
    """`../shared/data` beside the repository."""
    return REPO_ROOT.parent / "shared" / "data"


def candidate_dirs(data_dir: str | Path | None) -> list[tuple[str, Path]]:
    """The local place looked in, with how it was chosen (a list of one): `--data-dir` when given, else
    `$HARNESS_DATA` when set, else the default `../shared/data` (after which load_task tries the hub).

    Raises:
        HarnessError: `--data-dir` or `$HARNESS_DATA` names no folder.
    """
    if data_dir:
        how, root = "--data-dir", Path(data_dir)
    elif os.environ.get("HARNESS_DATA"):
        how, root = "$HARNESS_DATA", Path(os.environ["HARNESS_DATA"])
    else:
        return [("default", default_data_dir())]
    if not root.is_dir():
        raise HarnessError(f"{how} {root}: no such folder")
    return [(how, root)]


def nltk_roots(data_dir: str | Path | None) -> list[Path]:
    """Where `<root>/nltk_data` is looked for (augment.use_nltk_data): the data location, then the
    default `../shared/data`, which ships NLTK's tagger, even when `--data-dir` or `$HARNESS_DATA`
    points elsewhere (a user's data folder often holds only the task folders)."""
    roots = [root for _, root in candidate_dirs(data_dir)]
    default = default_data_dir()
    return roots if default.resolve() in {r.resolve() for r in roots} else [*roots, default]


def find_task_dir(task: Task, data_dir: str | Path | None) -> Path | None:
    """The task's folder in the local place looked in (`candidate_dirs`) when it holds the training file, or None."""
    for _, root in candidate_dirs(data_dir):
        if (root / task.glue_dir / dict(task.files)["train"]).is_file():
            return root / task.glue_dir
    return None


def read_tsv(path: Path, task: Task, require_labels: bool) -> Split:
    """Read one tab-separated file (plain or .gz) strictly (harness/data/tsv.py) and check it for the task.
    Files have a header line, except where the task names its `columns` and the first line holds none
    of its column names (CoLA's train and dev).

    Raises:
        HarnessError: a file that does not parse, missing columns, a label that is not a class of the
            task, an empty text (outside `task.empty_texts`), a repeated id; the message is one line
            starting `path:line:` (`path:` for the whole file).
    """
    return _read_checked(path, task, require_labels, keep_empty=path.name in task.empty_texts)[0]


def read_for_prediction(path: Path, task: Task) -> tuple[Split, list[int]]:
    """A file to predict (`harness predict`): read and checked as `read_tsv` does, labels optional, and
    rows with an empty (or all-whitespace) text kept: every row gets a prediction, so an empty text is
    an input like any other (the shared QQP/test.tsv has one). Training and scored data refuse them.

    Returns:
        The split (every row, in file order) and the line numbers of the rows with an empty text.

    Raises:
        HarnessError: as `read_tsv`, except for empty texts.
    """
    return _read_checked(path, task, require_labels=False, keep_empty=True)


def _read_checked(path: Path, task: Task, require_labels: bool, keep_empty: bool) -> tuple[Split, list[int]]:
    """`read_tsv`'s work: the split, and the line numbers of rows with an empty text (an error unless
    `keep_empty`)."""
    wanted = [n for c in (*task.text_columns, task.label_column, task.id_column) if c for n in task.names_for(c)]
    table = read_table(path, task.quoting, task.columns, wanted)
    found = table.header
    text = [task.find(c, found) for c in task.text_columns]
    missing = [c for c, name in zip(task.text_columns, text) if name is None]
    if missing:
        raise HarnessError(f"{path}:1: missing column(s) {', '.join(missing)} for task {task.name} (found: {', '.join(found)})")
    empty = table.empty_texts(text)
    if empty and not keep_empty:
        raise table.empty_text_error(empty[0], text)
    texts = list(zip(*(table.column(c) for c in text)))
    label, labels = task.find(task.label_column, found), None
    if label is not None:
        labels = parse_labels(table.column(label), task, path, first=table.first)
    elif require_labels:
        names = " or ".join(repr(n) for n in task.names_for(task.label_column))
        raise HarnessError(f"{path}:1: missing label column {names} (found: {', '.join(found)})")
    id_name = task.find(task.id_column, found) if task.id_column else None
    if id_name:
        table.check_unique(id_name)
    ids = table.column(id_name) if id_name else None
    return Split(texts, labels, display_path(path), ids), [row + table.first for row in empty]


def display_path(path: Path) -> str:
    """`path` relative to the repository when it is near it (`../shared/data/...`), so that results
    do not carry one machine's absolute paths; absolute otherwise."""
    rel = os.path.relpath(Path(path).resolve(), REPO_ROOT)
    return rel if not rel.startswith("../..") else str(Path(path).resolve())


def read_glue_folder(task: Task, folder: Path) -> dict[str, Split]:
    """Every split of `task.files` in `folder`: train and validation always, the others when present."""
    out = {}
    for split, name in task.files:
        if split in REQUIRED_SPLITS or (folder / name).is_file():
            out[split] = read_tsv(folder / name, task, require_labels=not split.startswith("test"))
    return out


def load_from_hub(task: Task) -> dict[str, Split]:
    """The task's splits from the Hugging Face hub (GLUE's own split), columns found by alias. `datasets` is
    imported here: only runs that read the hub need it."""
    import datasets

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
    """A task's training data is not where it was looked for: not in the data location given
    (`--data-dir`, `$HARNESS_DATA`), or, when none was given, neither in `../shared/data` nor on the hub.

    Attributes:
        reason: where it was looked for and what is missing there, without the advice, paths as
            `display_path` shows them (for the "not run" lines of results and reports, which carry no
            machine's absolute paths).
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


_HUB_UNREACHABLE: list[Exception] = []  # a connection error, once seen: the hub is not asked again in this process


def load_task(name: str, data_dir: str | Path | None = None) -> dict[str, Split]:
    """All available splits of a task: train and validation always, the others when present.

    Raises:
        NoData: the data location given (`data_dir`, else `$HARNESS_DATA`) lacks the training file (the
            hub is not tried); or, with none given, `../shared/data` lacks it and the hub failed (offline:
            in about 20 s, after its retries; later tasks of the same process do not wait again).
    """
    task: Task = TASKS.get(name)
    folder = find_task_dir(task, data_dir)
    if folder is not None:
        return (task.reader or read_glue_folder)(task, folder)
    train = f"{task.glue_dir}/{dict(task.files)['train']}"
    how, _ = candidate_dirs(data_dir)[0]
    if how != "default":
        undo = "leave out --data-dir" if how == "--data-dir" else "unset $HARNESS_DATA"
        raise NoData(f"no data for task {task.name}: {no_data_reason(task, data_dir, None, str)}. Only the folder "
                     f"given is looked in: put {train} there, or {undo} to use ../shared/data or the hub.",
                     no_data_reason(task, data_dir, None))
    try:
        if _HUB_UNREACHABLE:
            raise _HUB_UNREACHABLE[0]
        print(f"[data] {task.name}: no local {train}; trying the Hugging Face hub "
              f"({'/'.join(task.hub)}; offline, it gives up after about 20 s)", flush=True)
        return load_from_hub(task)
    except Exception as e:
        if isinstance(e, OSError):  # ConnectionError and friends
            _HUB_UNREACHABLE[:] = [e]
        advice = f"Pass --data-dir DIR (or set $HARNESS_DATA=DIR) where DIR/{train} exists, or run online to use the hub."
        raise NoData(f"no data for task {task.name}: {no_data_reason(task, data_dir, e, str)}. {advice}",
                     no_data_reason(task, data_dir, e)) from None


def no_data_reason(task: Task, data_dir: str | Path | None, error: Exception | None,
                   show: Callable[[Path], str] = display_path) -> str:
    """The place looked in (paths as `show` writes them), what it has instead of the training file, and
    the hub's error when the hub was tried (`error`), in one line."""
    train = f"{task.glue_dir}/{dict(task.files)['train']}"
    how, root = candidate_dirs(data_dir)[0]
    folder = root / task.glue_dir
    if folder.is_dir():
        present = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.endswith(".md"))
        has = f" ({show(folder)} has {', '.join(present) or 'no data files'} but no training file)"
    elif root.is_dir():
        subfolders = ", ".join(sorted(f"{p.name}/" for p in root.iterdir() if p.is_dir()))
        has = f" ({show(root)} has {subfolders} but no {task.glue_dir}/)" if subfolders else f" ({show(root)} has no folders)"
    else:
        has = ""
    if error is None:
        return f"no {train} in {how} {show(root)}{has}"
    return (f"no {train} in {how}: {show(folder)}{has}; "
            f"and the Hugging Face hub ({'/'.join(task.hub)}) failed: {type(error).__name__}")
