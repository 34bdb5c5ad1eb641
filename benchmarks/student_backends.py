"""A paper-sized bilstm_soft student (random weights: speed does not depend on them) in PyTorch, ONNX
Runtime fp32 and int8, 1 thread: the offline regime over the 67,349 SST-2 train sentences (batch 512,
text in, logits out) two ways: the whole set in one call (length-sorted across it, best of 2), and as
`harness run` times it (harness.speed.measure.offline: one call per 512 sentences in file order), the latter
with each call run whole (as before harness.data.batching.recurrent_batches) and in its length-sorted
groups of 32 rows (now); and batch-1 p50 over 300 SST-2 dev sentences. Prints; asserts nothing.

    .venv/bin/python benchmarks/student_backends.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from harness.core import plugins
from harness.core.config import StudentConfig
from harness.core.registry import STUDENTS
from harness.data import batching
from harness.data.tasks import load_task
from harness.engine import ort
from harness.engine.wordmodel import StudentPredictor, Vocab
from harness.speed import measure


def paper_student(train: list[str]) -> StudentPredictor:
    vocab = Vocab.from_texts([train])
    torch.manual_seed(0)
    model = STUDENTS.get("bilstm_soft").build(StudentConfig(hidden=150, fc=200), len(vocab), 384, 2)
    meta = {"student": "bilstm_soft", "task": "sst2", "num_labels": 2, "embed_dim": 384, "max_tokens": 64,
            "hidden": 150, "fc": 200, "multichannel": True, "dropout": 0.1}
    return StudentPredictor(model, vocab, meta)


def main() -> None:
    plugins.load_plugins()
    torch.set_num_threads(1)
    sst = load_task("sst2")
    dev, texts = sst["validation"].texts, sst["train"].texts
    student = paper_student([t[0] for t in texts])
    folder = Path(tempfile.mkdtemp())
    fp32 = ort.export_student(student, folder / "student.onnx", dev)
    int8 = ort.quantize_int8(fp32, folder / "student.int8.onnx")
    runners = {"torch": student, "onnx": ort.OrtStudent.from_predictor(student, fp32),
               "onnx-int8": ort.OrtStudent.from_predictor(student, int8)}
    for name, runner in runners.items():
        runner.logits(texts[:2000], 512)  # warm-up
        seconds = []
        for _ in range(2):
            start = time.perf_counter()
            runner.logits(texts, 512)
            seconds.append(time.perf_counter() - start)
        latencies = []
        for sentence in dev[:300]:
            start = time.perf_counter()
            runner.logits([sentence], 1)
            latencies.append(time.perf_counter() - start)
        per_call = {}
        for label, rows in (("calls run whole", 512), ("groups of 32", batching.RECURRENT_ROWS_CPU)):
            saved, batching.RECURRENT_ROWS_CPU = batching.RECURRENT_ROWS_CPU, rows
            per_call[label] = measure.offline(runner.logits, texts, 512)["sentences_per_s"]
            batching.RECURRENT_ROWS_CPU = saved
        print(f"{name}: offline {len(texts) / min(seconds):,.0f} sentences/s in one call; per 512-sentence call "
              + ", ".join(f"{label} {speed:,.0f}" for label, speed in per_call.items())
              + f"; batch-1 p50 {np.median(latencies) * 1e3:.3f} ms", flush=True)


if __name__ == "__main__":
    main()
