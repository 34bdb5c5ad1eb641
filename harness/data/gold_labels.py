"""Gold labels of a task's rows from their text (the teacher's labels are harness/engine/label.py's): class
names or indices, or a regression task's scores; the first bad one is reported as `path:line`
(used by harness.data.tasks.read_tsv)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.errors import HarnessError

if TYPE_CHECKING:
    from harness.data.tasks import Task


def parse_labels(raw: Sequence[str], task: Task, path: Path | str, first: int = 2) -> list[int] | list[float]:
    """Class indices from label names (`task.label_names`) or index strings, or a regression task's
    scores; the first bad one is reported with its line number (`first`: the first row's line, 2 after
    a header)."""
    if task.is_regression:
        return parse_scores(raw, task, path, first)
    by_name = {name: i for i, name in enumerate(task.label_names)}
    known = {str(i): i for i in range(task.num_labels)} | by_name
    if set(raw) <= known.keys():  # the usual case, fast: every value is a plain index or a name
        return list(map(known.__getitem__, raw))
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
