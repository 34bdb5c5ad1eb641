"""Per-example predictions, kept beside every run (lm-evaluation-harness' `--log_samples`).

`<run>/predictions/<task>/examples.parquet`: one row per evaluation example (split, example: its place
in the split from 0, label: null on an unlabelled test split, and the task's text columns).
`<run>/predictions/<task>/<model>.parquet`: one row per (split, example, seed): the model's prediction
(class index, or score for regression) and its raw outputs. The paired tests and intervals of
results.json are computed from these, `harness compare` pairs two runs' models on them, and
`harness report --disagreements N` lists the examples where teacher and student disagree most.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.core.metrics import predictions
from harness.data.tasks import Split

FOLDER = "predictions"
EXAMPLES = "examples"


def task_folder(run: Path, task: str) -> Path:
    return run / FOLDER / task


def write_table(table: pa.Table, path: Path) -> None:
    """A parquet file written whole or not at all (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_examples(folder: Path, columns: tuple[str, ...], splits: list[tuple[str, Split]]) -> None:
    """examples.parquet: every example of `splits` ((name, split) in results' naming, e.g. dev)."""
    data: dict[str, list] = {"split": [], "example": [], "label": [], **{c: [] for c in columns}}
    for name, split in splits:
        data["split"] += [name] * len(split)
        data["example"] += list(range(len(split)))
        data["label"] += [None] * len(split) if split.labels is None else [float(v) for v in split.labels]
        for k, column in enumerate(columns):
            data[column] += [text[k] for text in split.texts]
    write_table(pa.table(data), folder / f"{EXAMPLES}.parquet")


def write_model(folder: Path, model: str, outputs: dict[int, dict[str, np.ndarray]]) -> None:
    """<model>.parquet from {seed: {split: (N, K) raw outputs}}."""
    parts = []
    for seed, by_split in outputs.items():
        for split, out in by_split.items():
            out = np.asarray(out, dtype=np.float32)
            parts.append(pa.table({"split": [split] * len(out), "example": np.arange(len(out)),
                                   "seed": np.full(len(out), seed, dtype=np.int64),
                                   "prediction": predictions(out).astype(np.float64),
                                   "output": pa.FixedSizeListArray.from_arrays(out.reshape(-1), out.shape[1])}))
    write_table(pa.concat_tables(parts), folder / f"{model}.parquet")


def read(folder: Path, name: str) -> pd.DataFrame:
    """A predictions file of a run's task folder: `examples` or a model's name."""
    return pq.read_table(folder / f"{name}.parquet").to_pandas()


def seed_columns(frame: pd.DataFrame, split: str, column: str = "prediction") -> np.ndarray:
    """One split of a model's predictions as (examples, seeds), seeds in increasing order."""
    part = frame[frame["split"] == split]
    return np.stack([g.sort_values("example")[column].to_numpy() for _, g in part.groupby("seed")], axis=1)


def labels_of(examples: pd.DataFrame, split: str) -> np.ndarray:
    return examples[examples["split"] == split].sort_values("example")["label"].to_numpy()
