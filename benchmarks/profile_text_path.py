"""The student's text path over the 67,349 SST-2 train sentences (1 thread), as in reports/text-path-profile.md.

    .venv/bin/python benchmarks/profile_text_path.py [--before]          # cProfile of StudentPredictor.logits (batch 512)
    .venv/bin/python benchmarks/profile_text_path.py --time [--before]   # logits and encode alone, best of 3
    .venv/bin/python benchmarks/profile_text_path.py --encode            # tokenise / lookup throughput, former vs current

`--before` swaps the former encode back in (per sentence nltk.word_tokenize, Vocab.encode, then
TokenIds.from_lists). The student is benchmarks/student_backends.py's paper-sized bilstm_soft.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from collections.abc import Callable

import nltk
import numpy as np
import torch
from student_backends import paper_student

from harness.core import plugins
from harness.data import text
from harness.data.batching import TokenIds
from harness.data.tasks import load_task
from harness.engine.wordmodel import StudentPredictor


def former_encode(self: StudentPredictor, texts: list[tuple[str, ...]]) -> list[TokenIds]:
    return [TokenIds.from_lists([self.vocab.encode(nltk.word_tokenize(s, preserve_line=True), self.meta["max_tokens"])
                                 for s in col]) for col in zip(*texts)]


def best_of(n: int, fn: Callable[[], object]) -> tuple[float, object]:
    runs = []
    for _ in range(n):
        start = time.perf_counter()
        out = fn()
        runs.append((time.perf_counter() - start, out))
    return min(runs, key=lambda r: r[0])


def encode_rows(texts: list[str], student: StudentPredictor) -> None:
    vocab = student.vocab

    def nltk_tokens() -> list[list[str]]:
        return [nltk.word_tokenize(s, preserve_line=True) for s in texts]

    rows = [("tokenize only, NLTK word_tokenize per sentence", nltk_tokens, 2),
            ("tokenize only, harness.data.text.tokenize_many", lambda: text.tokenize_many(texts), 5),
            ("tokenize only, harness.data.augment.tokenize per sentence", lambda: [text.tokenize(s) for s in texts], 3),
            ("tokenize + lookup + TokenIds, former",
             lambda: TokenIds.from_lists([vocab.encode(nltk.word_tokenize(s, preserve_line=True), 64) for s in texts]), 2),
            ("tokenize + lookup + TokenIds, Vocab.encode_texts", lambda: vocab.encode_texts(texts, 64), 5)]
    outs = []
    for name, fn, n in rows:
        seconds, out = best_of(n, fn)
        outs.append(out)
        print(f"{name:60s} {len(texts) / seconds:>10,.0f} sentences/s  ({seconds:.3f} s, best of {n})")
    assert np.array_equal(outs[3].flat, outs[4].flat) and np.array_equal(outs[3].offsets, outs[4].offsets)


def profile(student: StudentPredictor, texts: list[tuple[str, ...]]) -> None:
    prof = cProfile.Profile()
    start = time.perf_counter()
    prof.runcall(student.logits, texts, 512)
    wall = time.perf_counter() - start
    stats = pstats.Stats(prof)
    print(f"wall under cProfile: {wall:.2f} s ({len(texts) / wall:,.0f} sentences/s)")
    for (file, _, name), row in sorted(stats.stats.items(), key=lambda kv: -kv[1][3])[:25]:
        print(f"{row[3]:7.2f} s  {100 * row[3] / wall:5.1f}%  {name} ({file.rsplit('/', 1)[-1]})")


def main() -> None:
    plugins.load_plugins()
    torch.set_num_threads(1)
    texts = load_task("sst2")["train"].texts
    student = paper_student([t[0] for t in texts])
    if "--before" in sys.argv:
        StudentPredictor.encode = former_encode
    if "--encode" in sys.argv:
        return encode_rows([t[0] for t in texts], student)
    student.logits(texts[:2048], 512)  # warm-up
    if "--time" in sys.argv:
        logits, _ = best_of(3, lambda: student.logits(texts, 512))
        encode, _ = best_of(1, lambda: student.encode(texts))
        print(f"logits: {len(texts) / logits:,.0f} sentences/s ({logits:.2f} s); encode alone: "
              f"{len(texts) / encode:,.0f} sentences/s ({encode:.2f} s)")
        return
    profile(student, texts)


if __name__ == "__main__":
    main()
