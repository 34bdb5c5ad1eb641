"""What a saved model folder records about itself for `predict` and `measure` (its `harness.json`): the
task, its labels, and the settings the run predicted with, so that a reloaded model gives the run's
outputs, and the run's dev score, exactly.

Fields (format 2):
- `kind` (teacher | student), `plugin` (the registered name that loads it), `task`;
- `num_labels`, `label_names`: the task's when the model was trained (a task whose labels have changed
  since is refused, rather than mapping outputs to the wrong names);
- `batch_size`: rows per call when the run scored it (SCORE_BATCH); calls are length-sorted, so the
  padding, and with it the last bits of a logit, follow the batch;
- a teacher's `max_length` (wordpieces its tokenizer keeps per example, pairs truncated longest-first;
  its tokenizer files are saved beside the weights) and `precision` (bf16: scored under bfloat16
  autocast). Before format 2 a reload assumed 128 wordpieces, while SST-2's teacher trained and was
  scored at 64 (`teacher.max_length`);
- a student's `max_tokens` (words kept per sentence, NLTK's tokens; the student's own config.json,
  which its loader reads, holds it too);
- `origins`: where the task and the model's plugin were registered from when it trained (`harness ls`'s words:
  `toy_task (plugins=)`, an entry point and its package), so that loading it where they are not registered says
  what to load, not only that the name is unknown. Cards written before it have none.

`harness run` writes the card into every model it places under `models/<task>/` (pipeline.copy_model),
so models from older cache entries get one too. A folder written before format 2 (kind, plugin and
task only) still loads: a student's config.json holds all it needs; a teacher is given
LEGACY_MAX_LENGTH, what reloading used before, with a one-line warning that it may differ from the run's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.core.config import TeacherConfig
from harness.core.errors import HarnessError
from harness.core.registry import STUDENTS, TASKS, TEACHERS
from harness.data.tasks import Task
from harness.engine import manifest
from harness.engine.cache import write_json_atomic

NAME = "harness.json"
FORMAT = 2
SCORE_BATCH = 256  # rows per call when a run scores a model on its splits, and when `predict` runs it
LEGACY_MAX_LENGTH = 128  # the max length reloading gave a teacher before folders recorded theirs


def _common(kind: str, plugin: str, task: Task) -> dict:
    registry = TEACHERS if kind == "teacher" else STUDENTS
    origins = {"task": TASKS.origin(task.name) if task.name in TASKS else "not registered",
               "plugin": registry.origin(plugin) if plugin in registry else "not registered"}
    return {"format": FORMAT, "kind": kind, "plugin": plugin, "task": task.name, "num_labels": task.num_labels,
            "label_names": list(task.label_names), "batch_size": SCORE_BATCH, "origins": origins}


def check_registered(folder: Path, card: dict) -> None:
    """The card's task and plugin are registered in this process.

    Raises:
        HarnessError: one is not, naming where it came from when the model trained and what to load.
    """
    registry = TEACHERS if card["kind"] == "teacher" else STUDENTS
    for key, what, known in (("task", "task", TASKS), ("plugin", f"{card['kind']} plugin", registry)):
        name = card[key]
        if name not in known:
            came = (card.get("origins") or {}).get(key)
            source = f"; it came from {came} when the model trained" if came else ""
            raise HarnessError(f"{folder}: {what} {name!r} is not registered here{source}: load it with --plugins MODULE "
                               "(plugins= in Python) or install the package that registers it")


def teacher_card(task: Task, teacher: TeacherConfig) -> dict:
    """The card of a teacher fine-tuned and scored with `teacher`'s settings (an ensemble member's own)."""
    return {**_common("teacher", teacher.name, task), "max_length": teacher.max_length, "precision": teacher.precision}


def student_card(task: Task, plugin: str, max_tokens: int) -> dict:
    """The card of a student of registered architecture `plugin` (`bilstm`, `siamese_bilstm`)."""
    return {**_common("student", plugin, task), "max_tokens": max_tokens}


def write(folder: Path, card: dict) -> None:
    """Write `card` as the folder's harness.json (atomically) and record it in the folder's manifest,
    which must exist (a sealed model folder)."""
    write_json_atomic(folder / NAME, card)
    manifest.add(folder, NAME)


def read(folder: Path) -> dict:
    """The folder's card, as written (format 1 has kind, plugin and task only).

    Raises:
        HarnessError: no harness.json, or one that is not a card.
    """
    path = folder / NAME
    if not path.is_file():
        raise HarnessError(f"{folder}: not a model folder written by `harness run` (no {NAME})")
    try:
        card = json.loads(path.read_text())
        if not all(isinstance(card.get(k), str) for k in ("kind", "plugin", "task")):
            raise ValueError
    except (ValueError, AttributeError, UnicodeDecodeError):
        raise HarnessError(f"{folder}: {NAME} is not a model card (kind, plugin and task)") from None
    return card


def check_task(folder: Path, card: dict, task: Task) -> None:
    """The task registered under the card's name still has the labels the model was trained for.

    Raises:
        HarnessError: another number of labels, or other label names.
    """
    num, names = card.get("num_labels", task.num_labels), card.get("label_names", list(task.label_names))
    if num != task.num_labels or names != list(task.label_names):
        raise HarnessError(f"{folder}: trained for task {task.name} with {num} label(s) {names}, but the task now has "
                           f"{task.num_labels} {list(task.label_names)}: predict with the harness version that trained it")


def teacher_max_length(folder: Path, card: dict) -> int:
    """The max length a teacher was scored with in its run; LEGACY_MAX_LENGTH, with a warning, for a
    folder that does not record it."""
    if "max_length" in card:
        return int(card["max_length"])
    print(f"warning: {folder}: {NAME} does not record the teacher's max length (written before format {FORMAT}); "
          f"using {LEGACY_MAX_LENGTH} wordpieces, which may differ from its run's teacher.max_length: rerun "
          "`harness run` (it reuses its cache) to rewrite the run's models with their settings", file=sys.stderr, flush=True)
    return LEGACY_MAX_LENGTH
