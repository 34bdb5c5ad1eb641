"""`harness predict`: score a GLUE-style TSV with a saved teacher or student."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from harness import device, manifest
from harness.errors import HarnessError
from harness.metrics import predictions, score
from harness.registry import STUDENTS, TASKS, TEACHERS
from harness.tasks import Task, read_tsv
from harness.wordmodel import load_student


def load_model(folder: Path):
    """A model folder written by `harness run` (models/<task>/<name>/) -> (predictor, its harness.json).

    Raises:
        HarnessError: not a model folder, or a damaged one (a file missing, truncated or changed since
            it was written, per its manifest), naming the file; or one the model's code cannot load.
    """
    if not (folder / "harness.json").is_file():
        raise HarnessError(f"{folder}: not a model folder written by `harness run` (no harness.json)")
    problem = manifest.problem(folder)
    if problem:
        raise HarnessError(f"{folder}: damaged model folder: {problem}; rerun `harness run` to rebuild it")
    meta = json.loads((folder / "harness.json").read_text())
    try:
        if meta["kind"] == "teacher":
            return TEACHERS.get(meta["plugin"]).load(folder), meta
        STUDENTS.get(meta["plugin"])
        return load_student(folder), meta
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


def predict(model_dir: Path, input_path: Path, output: Path | None) -> dict | None:
    """Write one prediction per row to `output` if given, in GLUE's submission format (`index<TAB>
    prediction`, with a header line); return the task's scores when the file has labels."""
    predictor, meta = load_model(model_dir)
    predictor.to(device.current().device)  # --device (harness/device.py)
    task = TASKS.get(meta["task"])
    split = read_tsv(input_path, task, require_labels=False)
    outputs = predictor.logits(split.texts, 256) if len(split) else np.zeros((0, task.num_labels), dtype=np.float32)
    preds = predictions(outputs)
    if output is not None:
        tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
        with open(tmp, "w") as f:
            f.write("index\tprediction\n")
            f.writelines(f"{i}\t{submission_value(task, p)}\n" for i, p in enumerate(preds))
        os.replace(tmp, output)
    if split.labels is None:
        return None
    return {"n": len(split), **score(task.metrics, split.labels, preds)}
