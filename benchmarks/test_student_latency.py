"""Batch-1 latency of the paper-sized student, PyTorch eager and ONNX Runtime (fp32, int8)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from harness.engine import ort

pytestmark = pytest.mark.benchmark(group="student batch-1")


def one_at_a_time(logits, texts):
    """A callable that scores the next dev sentence on each call (cycling), batch 1."""
    cycle = itertools.cycle(texts)
    return lambda: logits([next(cycle)], 1)


def test_student_torch(benchmark, student, sst2, info) -> None:
    info["backend"] = "torch"
    benchmark(one_at_a_time(student.logits, sst2["validation"].texts[:200]))


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_student_onnx(benchmark, student, sst2, info, backend: str, tmp_path_factory) -> None:
    folder: Path = tmp_path_factory.mktemp("onnx")
    path = ort.export_student(student, folder / "model.onnx", sst2["validation"].texts[:200])
    if backend == "onnx-int8":
        path = ort.quantize_int8(path, folder / "model.int8.onnx")
    info["backend"] = backend
    benchmark(one_at_a_time(ort.OrtStudent.from_predictor(student, path).logits, sst2["validation"].texts[:200]))
