"""Labelling backends: the fine-tuned teacher in PyTorch (`torch`, the default), or exported to ONNX
Runtime in fp32 (`onnx`) or with dynamic int8 weights (`onnx-int8`), chosen by `teacher.label_backend`.

A faster backend may cost accuracy, so a run that uses one measures the cost and keeps it in the label
stage's results: on a seeded sample of the transfer set (CHECK_ROWS rows), the largest |logit
difference| from the fp32 PyTorch teacher and, for classes, how often the argmax agrees. The ONNX files
are made in the stage's work folder and removed before it is committed (they are the teacher's, not
the labels'); `teacher.precision` applies to the PyTorch backend only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from harness.engine import device
from harness.engine.label import teacher_texts

BACKENDS = ("torch", "onnx", "onnx-int8")
CHECK_ROWS = 2_000
CHECK_SEED = 0


def check_rows(n: int) -> np.ndarray:
    """The sorted seeded sample of transfer-set rows on which a backend is compared with PyTorch."""
    if n <= CHECK_ROWS:
        return np.arange(n)
    return np.sort(np.random.default_rng(CHECK_SEED).choice(n, size=CHECK_ROWS, replace=False))


def labeller(teacher, backend: str, folder: Path, table: pa.Table):
    """The predictor that labels: `teacher` itself, or its ONNX export (checked against it on the check
    rows, as every export is) run by ONNX Runtime on the runtime's device."""
    if backend == "torch":
        return teacher
    from harness.engine import ort

    rt = device.current()
    teacher.to("cpu", teacher.autocast)  # exports run from the CPU
    path = folder / ("teacher.int8.onnx" if backend == "onnx-int8" else "teacher.onnx")
    if rt.main:
        check = teacher_texts(teacher, table, check_rows(table.num_rows)[: ort.CHECK_TEXTS])
        fp32 = teacher.export_onnx(folder / "teacher.onnx", check)
        if backend == "onnx-int8":
            ort.quantize_int8(fp32, path)
    device.barrier()  # the other ranks load what rank 0 exported
    teacher.to(rt.device, teacher.autocast)
    return teacher.onnx_predictor(path).to(rt.device)


def cost(teacher, table: pa.Table, logits: np.ndarray, batch_size: int) -> dict:
    """How far the labels in `logits` are from the PyTorch teacher's on the check rows."""
    idx = check_rows(table.num_rows)
    reference = teacher.logits(teacher_texts(teacher, table, idx), batch_size)  # (R, K)
    got = np.asarray(logits[idx])
    out = {"check_rows": len(idx), "max_abs_logit_delta": float(np.abs(got - reference).max())}
    if reference.shape[1] > 1:
        out["argmax_agreement"] = round(100 * float((got.argmax(1) == reference.argmax(1)).mean()), 3)
    return out
