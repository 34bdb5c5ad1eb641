"""`harness report RUN --disagreements N`: the examples where teacher and student disagree most.

Read from the run's per-example predictions (harness/results/samples.py), nothing recomputed. For each
task and each student that has a paired role (label-only or distilled; not ablation variants), the
dev examples ranked by how far the student's output is from the teacher's, both averaged over their
seeds:
- classification: the total variation distance between the two softmax distributions (0: the same
  probabilities, 1: all mass on different classes), so confident disagreements rank first;
- regression (STS-B): the absolute difference of the two scores.
Written as disagreements.md in the run folder (whole or not at all) and printed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import softmax

from harness.core.errors import HarnessError
from harness.core.files import write_text_atomic
from harness.results import samples
from harness.results.glue_table import role_of

TEXT_WIDTH = 90  # characters of each text column shown


def seed_mean_outputs(frame: pd.DataFrame, split: str) -> np.ndarray:
    """A model's raw outputs on one split, (examples, K), averaged over its seeds; softmax first when K >= 2."""
    part = frame[frame["split"] == split]
    per_seed = []
    for _, g in part.groupby("seed"):
        out = np.stack(g.sort_values("example")["output"].to_numpy())
        per_seed.append(out if out.shape[1] == 1 else softmax(out, axis=1))
    return np.mean(per_seed, axis=0)


def gaps(teacher: np.ndarray, student: np.ndarray) -> np.ndarray:
    """How far apart two models are on each example: total variation distance of class probabilities, or
    the absolute difference of regression scores."""
    if teacher.shape[1] == 1:
        return np.abs(teacher[:, 0] - student[:, 0])
    return 0.5 * np.abs(teacher - student).sum(axis=1)


def shown(values: np.ndarray) -> str:
    """A model's output on one example: the regression score, or `class (probability)`."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    k = int(values.argmax())
    return f"{k} ({values[k]:.2f})"


def clip(text: str) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= TEXT_WIDTH else text[: TEXT_WIDTH - 1] + "…"


def task_table(folder: Path, student: str, n: int, split: str) -> pd.DataFrame:
    """The n examples of `split` where `student` and the teacher disagree most."""
    examples = samples.read(folder, samples.EXAMPLES)
    examples = examples[examples["split"] == split].sort_values("example")
    teacher = seed_mean_outputs(samples.read(folder, "teacher"), split)
    ours = seed_mean_outputs(samples.read(folder, student), split)
    gap = gaps(teacher, ours)
    order = np.argsort(-gap, kind="stable")[:n]
    columns = [c for c in examples.columns if c not in ("split", "example", "label")]
    rows = []
    for i in order:
        example = examples.iloc[i]
        label = example["label"]
        rows.append({"example": int(example["example"]), **{c: clip(example[c]) for c in columns},
                     "label": "–" if pd.isna(label) else (f"{label:.2f}" if teacher.shape[1] == 1 else str(int(label))),
                     "teacher": shown(teacher[i]), student: shown(ours[i]), "gap": f"{gap[i]:.2f}"})
    return pd.DataFrame(rows)


def disagreements(run: Path, results: dict, n: int, split: str = "dev") -> str:
    """Markdown: per task, per student, the n examples of `split` where it and the teacher disagree most.

    Raises:
        HarnessError: n is not positive, or the run kept no per-example predictions (a run made before
            they were kept).
    """
    if n < 1:
        raise HarnessError(f"--disagreements {n}: give a positive number of examples")
    lines = [f"# Where teacher and students disagree most ({split}, {n} examples each)", "",
             "Gap: total variation distance between the teacher's and the student's class probabilities (1: all "
             "mass on different classes), or the absolute difference of regression scores; each model averaged over "
             "its seeds. Outputs are shown as `class (probability)`.", ""]
    found = False
    for task, t in results["tasks"].items():
        folder = samples.task_folder(run, task)
        if not (folder / f"{samples.EXAMPLES}.parquet").is_file() or not (folder / "teacher.parquet").is_file():
            continue
        for name, model in t["models"].items():
            if role_of(name, model) not in ("label-only", "distilled") or not (folder / f"{name}.parquet").is_file():
                continue
            found = True
            lines += [f"## {task}: `{name}` against the teacher", "",
                      task_table(folder, name, n, split).to_markdown(index=False, disable_numparse=True), ""]
    if not found:
        raise HarnessError(f"{run}: no per-example predictions of a teacher and a student under "
                           f"{run / samples.FOLDER} (runs keep them since per-example predictions were added)")
    return "\n".join(lines)


def write(run: Path, results: dict, n: int) -> Path:
    path = run / "disagreements.md"
    write_text_atomic(path, disagreements(run, results, n))
    return path
