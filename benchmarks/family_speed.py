"""The bag of embeddings against the BiLSTM, offline, on each one's fastest backend (issue 22's "at least 5x"),
on whatever machine this runs on: `bag_soft` and `bilstm_soft` at the zoo preset's SST-2 sizes (384-wide
vectors, as MiniLM's; random weights: speed does not depend on them), timed as `harness run` times the offline
regime (harness.speed.measure.offline: calls of 512 SST-2 training sentences, text in, logits out, all usable
cores) on PyTorch, ONNX Runtime fp32 and dynamic int8. The two models alternate, round after round, in one
process, so a burst of load from elsewhere lands on one round of both rather than on one model. Prints each
round's sentences/s and the ratio of the two fastest backends; asserts nothing.

    .venv/bin/python benchmarks/family_speed.py [--rounds 5] [--n 8192]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from harness.core import plugins
from harness.core.registry import STUDENTS
from harness.core.settings import settings_of
from harness.data.tasks import load_task
from harness.engine import manifest
from harness.engine.wordmodel import StudentPredictor, Vocab
from harness.speed import measure
from harness.speed.efficiency import backend_predictor
from harness.speed.env import cpu_model

MODELS = ("bag_soft", "bilstm_soft")
EMBED_DIM = 384  # MiniLM's vectors at their own width: the zoo preset's `student.project: 0`


def random_student(name: str, train: list[str]) -> StudentPredictor:
    spec = STUDENTS.get(name)
    settings = settings_of(spec.settings, {}, name)  # the settings' defaults: the zoo's sizes
    vocab = Vocab.from_texts([train])
    torch.manual_seed(0)
    model = spec.build(settings, len(vocab), EMBED_DIM, 2)
    meta = {"student": name, "task": "sst2", "num_labels": 2, "embed_dim": EMBED_DIM, "max_tokens": 64}
    return StudentPredictor(model.eval(), vocab, meta)


def backends(student: StudentPredictor, folder: Path, check: list[tuple[str, ...]]) -> dict:
    """The student on each backend, exported, checked and quantised as `harness run` does it."""
    student.save(folder)  # a model folder as a run leaves it: the exports go beside it, listed in its manifest
    manifest.write(folder)
    return {b: backend_predictor(student, "student", b, folder, check) for b in ("torch", "onnx", "onnx-int8")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=8192, help="SST-2 training sentences timed per call sequence")
    args = parser.parse_args()
    plugins.load_plugins()
    sst = load_task("sst2")
    train = sst["train"].texts
    folder = Path(tempfile.mkdtemp())
    runners = {name: backends(random_student(name, [t[0] for t in train]), folder / name, sst["validation"].texts[:64])
               for name in MODELS}
    texts = train[: args.n]
    print(f"{cpu_model()}, torch {torch.__version__}, {args.n:,} SST-2 training sentences, calls of 512", flush=True)
    ratios = []
    with measure.threads_for(0) as threads:
        for r in range(args.rounds):
            best = {}
            for name in MODELS:
                speeds = {b: measure.offline(run.logits, texts, 512)["sentences_per_s"]
                          for b, run in runners[name].items()}
                best[name] = max(speeds.items(), key=lambda kv: kv[1])
                print(f"round {r + 1} ({threads} threads) {name}: "
                      + ", ".join(f"{b} {s:,.0f}" for b, s in speeds.items()), flush=True)
            ratios.append(best["bag_soft"][1] / best["bilstm_soft"][1])
            print(f"round {r + 1}: bag_soft {best['bag_soft'][1]:,.0f} ({best['bag_soft'][0]}) / bilstm_soft "
                  f"{best['bilstm_soft'][1]:,.0f} ({best['bilstm_soft'][0]}) = {ratios[-1]:.2f}x", flush=True)
    print(f"bag / BiLSTM on each one's fastest backend: median {np.median(ratios):.2f}x, "
          f"range {min(ratios):.2f}-{max(ratios):.2f}x over {len(ratios)} rounds")


if __name__ == "__main__":
    main()
