"""Shared inputs for the speed benches: real SST-2 sentences and a paper-sized student.

Run them with `python -m pytest benchmarks --benchmark-enable` (README, Benchmarks). They time;
they never assert a time. Compare runs with pytest-benchmark's own `--benchmark-compare`.
"""

from __future__ import annotations

import pytest
import torch

from harness.core import plugins
from harness.core.config import StudentConfig
from harness.core.registry import STUDENTS
from harness.data.augment import use_nltk_data
from harness.data.tasks import REPO_ROOT, load_task
from harness.engine.wordmodel import StudentPredictor, Vocab

THREADS = 1  # fixed so that benches are comparable between runs; recorded in extra_info


@pytest.fixture(scope="session", autouse=True)
def setup() -> None:
    plugins.load_plugins()
    torch.set_num_threads(THREADS)


@pytest.fixture(scope="session")
def sst2() -> dict:
    root = REPO_ROOT.parent / "shared" / "data"
    if not (root / "SST-2" / "train.tsv").is_file():
        pytest.skip(f"real data not found under {root}")
    use_nltk_data([root])
    return load_task("sst2")


@pytest.fixture(scope="session")
def student(sst2: dict) -> StudentPredictor:
    """The paper's BiLSTM (hidden 150, FC 200, multichannel) over 384-d vectors (the teacher's width),
    random weights, vocabulary of the SST-2 training set."""
    vocab = Vocab.from_texts([[t[0] for t in sst2["train"].texts]])
    model = STUDENTS.get("bilstm_soft").build(StudentConfig(), len(vocab), 384, 2)
    meta = {"student": "bilstm_soft", "num_labels": 2, "max_tokens": 64, "embed_dim": 384, "hidden": 150, "fc": 200,
            "multichannel": True, "dropout": 0.0}
    return StudentPredictor(model, vocab, meta)


@pytest.fixture
def info(benchmark) -> dict:
    benchmark.extra_info["threads"] = THREADS
    return benchmark.extra_info

