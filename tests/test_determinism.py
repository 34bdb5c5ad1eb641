"""Same seed, same machine: identical results. A tiny smoke-style run three times: twice from empty
caches, and once with only the teacher, transfer set and logits cached (so the students are trained in
a process that did not train the teacher first)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from cli_runner import harness
from safetensors.numpy import load_file

from harness.data.tasks import load_task
from harness.engine.wordmodel import load_student

SETS = ["teacher.name=hf_tiny", "train_limit=300", "dev_limit=100", "augment.n_iter=2", "measure.enabled=false",
        "measure.threads=1", "variants.tiny_kl.base=bilstm_tiny", "variants.tiny_kl.student.loss=kl",
        "variants.tiny_kl.student.temperature=2", "ablations=tiny_kl"]
STUDENTS = ("bilstm", "bilstm_tiny", "tiny_kl")

pytestmark = pytest.mark.slow  # three real runs


@dataclass
class Run:
    out: Path
    cache: Path
    results: dict

    @property
    def task(self) -> dict:
        return self.results["tasks"]["sst2"]


def run(tmp: Path, name: str, cache: Path) -> Run:
    out = tmp / name
    proc = harness("run", "--preset", "smoke", "--tasks", "sst2", "--students", "bilstm,bilstm_tiny",
                   *[a for s in SETS for a in ("--set", s)], "--out", str(out), "--cache-dir", str(cache))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Run(out, cache, json.loads((out / "results.json").read_text()))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> tuple[Run, Run, Run]:
    tmp = tmp_path_factory.mktemp("determinism")
    first = run(tmp, "first", tmp / "cache-first")
    second = run(tmp, "second", tmp / "cache-second")
    warm = tmp / "cache-warm"
    for stage in ("teacher", "augment", "label"):
        shutil.copytree(first.cache / stage, warm / stage)
    return first, second, run(tmp, "warm", warm)


def test_every_stage_recomputed(runs: tuple[Run, Run, Run]) -> None:
    """The first two runs compute everything; the third reuses only the teacher, transfer set and logits."""
    first, second, warm = runs
    assert not any(m["cached"] for m in first.task["stages"].values())
    assert not any(m["cached"] for m in second.task["stages"].values())
    assert {n for n, m in warm.task["stages"].items() if m["cached"]} == {"teacher", "augment", "label"}


def test_same_scores_and_histories(runs: tuple[Run, Run, Run]) -> None:
    """Dev scores of every model and the students' dev histories are identical, and so are the keys."""
    first, *others = runs
    for other in others:
        scores = [{n: m["scores"] for n, m in r.task["models"].items()} for r in (first, other)]
        assert scores[0] == scores[1]
        for name in ("teacher", *STUDENTS):
            assert other.task["stages"][name]["key"] == first.task["stages"][name]["key"]
            history = [[(h["epoch"], h["select"]) for h in r.task["stages"][name]["history"]] for r in (first, other)]
            assert history[0] == history[1] and history[0], name


def test_same_weights_and_logits(runs: tuple[Run, Run, Run], data_root: Path) -> None:
    """Saved weights are bit-identical (teacher and students), so are the transfer set and its logits,
    and the students give identical dev logits."""
    first, second, warm = runs
    for name in ("teacher", *STUDENTS):
        a = load_file(str(first.out / "models" / "sst2" / name / "model.safetensors"))
        for other in (second, warm):
            b = load_file(str(other.out / "models" / "sst2" / name / "model.safetensors"))
            assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), f"{name} weights differ"
    label_key = first.task["stages"]["label"]["key"]
    assert np.array_equal(np.load(first.cache / "label" / label_key / "logits.npy"),
                          np.load(second.cache / "label" / label_key / "logits.npy"))
    augment_key = first.task["stages"]["augment"]["key"]
    assert ((first.cache / "augment" / augment_key / "transfer.arrow").read_bytes()
            == (second.cache / "augment" / augment_key / "transfer.arrow").read_bytes())
    dev = load_task("sst2", str(data_root))["validation"].texts[:100]
    for name in STUDENTS:
        logits = [load_student(r.out / "models" / "sst2" / name).logits(dev) for r in runs]
        assert np.array_equal(logits[0], logits[1]) and np.array_equal(logits[0], logits[2]), name
