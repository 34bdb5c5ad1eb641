"""`harness predict`: score a GLUE-style TSV with a saved teacher or student."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

from harness.core.errors import HarnessError
from harness.core.metrics import predictions, score
from harness.core.registry import STUDENTS, TASKS, TEACHERS
from harness.data.tasks import Task, read_for_prediction
from harness.engine import device, manifest, model_card
from harness.engine.wordmodel import load_student


def load_model(folder: Path):
    """A model folder written by `harness run` (models/<task>/<name>/) -> (predictor, its card), the
    predictor set up as the run scored it: a teacher with the max length its card records
    (harness/engine/model_card.py; a folder from before cards recorded it gets the old 128, with a warning).

    Raises:
        HarnessError: not a model folder, or a damaged one (a file missing, truncated or changed since
            it was written, per its manifest), naming the file; one trained for other labels than its
            task now has; or one the model's code cannot load.
    """
    if not (folder / model_card.NAME).is_file():
        raise HarnessError(f"{folder}: not a model folder written by `harness run` (no {model_card.NAME})")
    problem = manifest.problem(folder)
    if problem:
        raise HarnessError(f"{folder}: damaged model folder: {problem}; rerun `harness run` to rebuild it")
    card = model_card.read(folder)
    model_card.check_registered(folder, card)
    model_card.check_task(folder, card, TASKS.get(card["task"]))
    try:
        if card["kind"] == "teacher":
            plugin = TEACHERS.get(card["plugin"])
            return plugin.load(folder, model_card.teacher_max_length(folder, card)), card
        STUDENTS.get(card["plugin"])
        return load_student(folder), card
    except HarnessError:
        raise
    except Exception as e:  # intact files the model code still rejects (e.g. made by another version)
        raise HarnessError(f"{folder}: cannot load the model: {type(e).__name__}: {first_words(e)}") from None


def first_words(e: Exception, limit: int = 200) -> str:
    """An exception's message on one line, cut to `limit` characters."""
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def submission_value(task: Task, prediction: float) -> str:
    """One prediction as GLUE's submission files write it: a score (STS-B), a label name (MNLI, QNLI,
    RTE) or a class index."""
    if task.is_regression:
        return f"{float(prediction):.3f}"
    return task.label_names[int(prediction)] if task.submit_names else str(int(prediction))


def on_device(predictor, card: dict):
    """The predictor on this process's device (--device, harness/engine/device.py); a teacher its run scored
    under bfloat16 autocast (`teacher.precision=bf16`) runs under it again."""
    where = device.current().device
    if card["kind"] == "teacher":
        return predictor.to(where, torch.bfloat16 if card.get("precision") == "bf16" else None)
    return predictor.to(where)


def warn_empty(path: Path, lines: list[int]) -> None:
    """One warning line for the rows of `path` with an empty text: how many, and the first one's line."""
    rows = f"{len(lines)} row{'s' * (len(lines) != 1)}"
    print(f"warning: {path}: {rows} with an empty text (first at line {lines[0]}); predicted as given (students read "
          "an empty text as one unknown word, the teacher as an empty string)", file=sys.stderr, flush=True)


def predict(model_dir: Path, input_path: Path, output: Path | None) -> dict | None:
    """Predict every row of `input_path`, in its order, as the model's run scored it (its card's
    settings and batch size). Write them to `output` if given, in GLUE's submission format (`index<TAB>
    prediction`, with a header line; the index is the row's id where the task's files have ids, else
    its place from 0); return the task's scores when the file has labels.

    A row with an empty text is predicted like any other (one warning line counts them); training data
    refuses them (harness/data/tasks.py).
    """
    predictor, card = load_model(model_dir)
    predictor = on_device(predictor, card)
    task = TASKS.get(card["task"])
    split, empty_lines = read_for_prediction(input_path, task)
    if empty_lines:
        warn_empty(input_path, empty_lines)
    batch = card.get("batch_size", model_card.SCORE_BATCH)
    outputs = predictor.logits(split.texts, batch) if len(split) else np.zeros((0, task.num_labels), dtype=np.float32)
    preds = predictions(outputs)
    if output is not None:
        ids = split.ids if split.ids is not None else range(len(split))
        tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
        with open(tmp, "w") as f:
            f.write("index\tprediction\n")
            f.writelines(f"{i}\t{submission_value(task, p)}\n" for i, p in zip(ids, preds))
        os.replace(tmp, output)
    if split.labels is None:
        return None
    return {"n": len(split), **score(task.metrics, split.labels, preds)}


def predict_texts(model_dir: Path, texts: list[str]) -> list[dict]:
    """Each text (a pair task's two texts joined by a tab) with the model's prediction, as a label name or a score,
    and its outputs: what `harness predict --text` prints, to try a model on a few sentences without a file."""
    predictor, card = load_model(model_dir)
    task = TASKS.get(card["task"])
    columns = len(task.text_columns)
    rows = [tuple(text.split("\t")) for text in texts]
    for text, row in zip(texts, rows):
        if len(row) != columns:
            need = "one text" if columns == 1 else f"{columns} texts joined by a tab, e.g. $'first\\tsecond'"
            raise HarnessError(f"--text {text!r}: task {task.name} takes {need}, this has {len(row)}")
    outputs = on_device(predictor, card).logits(rows, card.get("batch_size", model_card.SCORE_BATCH))
    out = []
    for text, logits, pred in zip(texts, outputs, predictions(outputs)):
        label = round(float(pred), 4) if task.is_regression else (task.label_names[int(pred)] if task.label_names else int(pred))
        out.append({"text": text, "prediction": label, "outputs": [round(float(x), 4) for x in logits]})
    return out
