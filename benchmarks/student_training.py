"""Student training throughput (issue 12, item 5): rows/s of `harness.engine.distill.train_student` for the
paper's students at the paper's batch sizes, on real sentences with random teacher logits (speed
does not depend on their values), in one process with 2 threads, one epoch over the same rows:

- `bilstm_soft` on 20,000 SST-2 training sentences, hidden 150, FC 200, batch 50;
- `siamese_bilstm_soft` on 20,000 QQP training pairs, hidden 300, FC 200, batch 256.

Each runs with the encoder and optimiser step as they were before (packed sequences and a per-parameter
Adadelta, kept here as `packed_forward` and `old_optimizers`), with the unpacked encoder (one LSTM call
per direction over the padded batch) and the old step, as it is now (the unpacked encoder, a multi-tensor
Adadelta and a LazyAdadelta that reads and writes each row's state once: bit-equal results), and now
under `student.precision=bf16`.
Prints a markdown table; asserts nothing. `--profile` instead prints where one `bilstm_soft` training
epoch's time goes (torch.profiler, operators by self CPU time), before and after.

    .venv/bin/python benchmarks/student_training.py [--rows N] [--threads N] [--profile]
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext, redirect_stderr, redirect_stdout
from io import StringIO

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from harness.core import plugins
from harness.core.config import StudentConfig
from harness.core.registry import STUDENTS
from harness.data.batching import TokenIds
from harness.data.tasks import load_task
from harness.engine import distill
from harness.engine.distill import LazyAdadelta, train_student
from harness.engine.wordmodel import Vocab
from students.bilstm import BiLSTMEncoder

CASES = {  # student, task, paper settings
    "bilstm_soft": ("sst2", {"hidden": 150, "fc": 200, "batch_size": 50}),
    "siamese_bilstm_soft": ("qqp", {"hidden": 300, "fc": 200, "batch_size": 256}),
}


def packed_forward(self: BiLSTMEncoder, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The encoder before: one bidirectional call over packed sequences."""
    packed = pack_padded_sequence(self.embed_inputs(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
    h = self.lstm(packed)[1][0]  # (2, B, H)
    return torch.cat([h[0], h[1]], dim=-1)


class OldLazyAdadelta(LazyAdadelta):
    """LazyAdadelta's step before: each row's state read twice, the rows of the table read and written back."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, rho, eps = group["lr"], group["rho"], group["eps"]
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state.update(step=0, square_avg=torch.zeros_like(p), acc_delta=torch.zeros_like(p),
                                 last=torch.zeros(p.shape[0], dtype=torch.long, device=p.device))
                state["step"] += 1
                grad = p.grad.coalesce()
                rows, g = grad.indices()[0], grad.values()
                decay = rho ** (state["step"] - 1 - state["last"][rows]).to(p.dtype).unsqueeze(1)
                square_avg = state["square_avg"][rows] * decay * rho + (1 - rho) * g * g
                delta = (state["acc_delta"][rows] * decay + eps).sqrt() / (square_avg + eps).sqrt() * g
                state["acc_delta"][rows] = state["acc_delta"][rows] * decay * rho + (1 - rho) * delta * delta
                state["square_avg"][rows] = square_avg
                state["last"][rows] = state["step"]
                p[rows] -= lr * delta


def old_optimizers(model: torch.nn.Module, cfg: StudentConfig) -> list[torch.optim.Optimizer]:
    """The optimisers before: Adadelta looping over parameters, and OldLazyAdadelta."""
    sparse = [model.encoder.embed.weight]  # both students: one encoder, one trainable table
    dense = [p for p in model.parameters() if p.requires_grad and all(p is not q for q in sparse)]
    return [torch.optim.Adadelta(dense, lr=cfg.lr, rho=cfg.rho, foreach=False), OldLazyAdadelta(sparse, lr=cfg.lr, rho=cfg.rho)]


def rows_per_second(student: str, rows: int, encoder: str, precision: str, profile: bool = False,
                    step: str = "new") -> float:
    task, sizes = CASES[student]
    texts = load_task(task)["train"].texts[:rows]
    columns = [[t[c] for t in texts] for c in range(len(texts[0]))]
    vocab = Vocab.from_texts(columns)
    ids = [vocab.encode_texts(col, 64) for col in columns]
    cfg = StudentConfig(**sizes, epochs=1, precision=precision)
    torch.manual_seed(0)
    model = STUDENTS.get(student).build(cfg, len(vocab), 384, 2)  # the teacher's 384-wide vectors, two channels
    rng = np.random.default_rng(0)
    targets, logits = rng.integers(0, 2, rows), rng.normal(size=(rows, 2)).astype(np.float32)
    dev = [TokenIds(i.flat, i.offsets[:2]) for i in ids]  # one row; scoring it is not timed work
    saved, saved_opts = BiLSTMEncoder.forward, distill.optimizers
    BiLSTMEncoder.forward = packed_forward if encoder == "packed" else saved
    distill.optimizers = old_optimizers if step == "old" else saved_opts
    try:
        start = time.perf_counter()
        recorder = torch.profiler.profile() if profile else nullcontext()
        with redirect_stderr(StringIO()), redirect_stdout(StringIO()), recorder as prof:
            train_student(model, cfg, ids, targets, logits, dev, [0], ("accuracy",),
                          lambda _: np.zeros((1, 2), np.float32), 0, student)
        seconds = time.perf_counter() - start
        if profile:
            print(f"### {student}, {encoder} encoder, {step} optimiser step, {precision}\n")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
        return rows / seconds
    finally:
        BiLSTMEncoder.forward, distill.optimizers = saved, saved_opts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="where bilstm_soft's training time goes, before and after")
    args = parser.parse_args()
    plugins.load_plugins()
    torch.set_num_threads(args.threads)
    if args.profile:
        for encoder, step in (("packed", "old"), ("unpacked", "new")):
            rows_per_second("bilstm_soft", args.rows, encoder, "fp32", profile=True, step=step)
        return
    print("| student | encoder | optimiser step | precision | rows/s | vs before |\n|---|---|---|---|---:|---:|")
    for student in CASES:
        before = None
        for encoder, step, precision in (("packed", "old", "fp32"), ("unpacked", "old", "fp32"), ("unpacked", "new", "fp32"),
                                         ("unpacked", "new", "bf16")):
            speed = rows_per_second(student, args.rows, encoder, precision, step=step)
            before = before or speed
            print(f"| {student} | {encoder} | {step} | {precision} | {speed:,.0f} | {speed / before:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
