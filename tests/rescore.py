"""Scores recomputed outside a run, from its saved model folders, to hold the numbers it records to.

A run scores each model in its own process, right after training (and each ONNX export while it times
it); these reload what it saved, as `harness predict` does, and count right answers here rather than
through harness.core.metrics, so a recorded score that is not the saved model's on those rows fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from harness.engine.ort import OrtStudent
from harness.engine.predict import load_model


def saved_outputs(folder: Path, texts: list[tuple[str, ...]], backend: str = "torch", threads: int = 1) -> np.ndarray:
    """The (N, K) outputs of the model saved in `folder` on `texts`: its PyTorch weights, or the ONNX
    export (`onnx`, `onnx-int8`) the run timed and scored, from the same folder.

    Args:
        threads: intra-op threads (torch's, which ONNX Runtime follows), as many as the run scored with
            (the tests' runs set measure.threads=1): dynamic int8 does not give the same logits on 1 and
            2 threads, and one flipped argmax in 80 rows moves the accuracy 1.25 points.
    """
    predictor, meta = load_model(folder)
    if backend != "torch":
        path = folder / ("model.int8.onnx" if backend == "onnx-int8" else "model.onnx")
        assert path.is_file(), f"{path}: the run recorded a {backend} score but left no export"
        predictor = (predictor.onnx_predictor(path) if meta["kind"] == "teacher"
                     else OrtStudent.from_predictor(predictor, path))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return predictor.logits(texts, 256)
    finally:
        torch.set_num_threads(before)


def accuracy(outputs: np.ndarray, labels: Sequence[int]) -> float:
    """Percent of rows whose highest output is the label."""
    assert len(outputs) == len(labels) > 0
    return 100 * sum(int(p) == int(y) for p, y in zip(np.argmax(outputs, axis=1), labels)) / len(labels)


def saved_accuracy(folder: Path, texts: list[tuple[str, ...]], labels: Sequence[int], backend: str = "torch") -> float:
    """`accuracy` of the saved model (or its export) on these rows, on one thread."""
    return accuracy(saved_outputs(folder, texts, backend), labels)
