"""Several processes under torchrun (gloo on CPU) run the tiny pipeline as one process does: each rank
takes its share of every batch and of the rows to label, gradients are summed, rank 0 alone writes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import OFFLINE, harness

from harness.data.tasks import REPO_ROOT
from harness.engine import manifest

SETS = ["teacher.name=hf_tiny", "train_limit=600", "dev_limit=200", "augment.n_iter=2", "measure.enabled=false",
        "ablations=", "teacher.epochs=2", "student.dropout=0.3"]  # students with dropout: the shared masks run
ARGS = ["run", "--preset", "smoke", "--tasks", "sst2", "--students", "bilstm,bilstm_soft", "--device", "cpu",
        *[a for s in SETS for a in ("--set", s)]]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "harness"]


def torchrun(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, **OFFLINE}
    env.pop("HARNESS_DATA", None)
    return subprocess.Popen([*TORCHRUN, *args], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def scores(out: Path) -> dict[str, float]:
    models = json.loads((out / "results.json").read_text())["tasks"]["sst2"]["models"]
    return {name: m["scores"]["dev"]["accuracy"] for name, m in models.items()}


def logits(cache: Path) -> np.ndarray:
    (path,) = (cache / "label").glob("*/logits.npy")
    return np.load(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """The same tiny run in one process and in two: (its folder for one, for two, the two-process run)."""
    tmp = tmp_path_factory.mktemp("distributed")
    one = harness(*ARGS, "--out", str(tmp / "one" / "out"), "--cache-dir", str(tmp / "one" / "cache"))
    assert one.returncode == 0, one.stderr[-3000:]
    proc = torchrun(*ARGS, "--out", str(tmp / "two" / "out"), "--cache-dir", str(tmp / "two" / "cache"))
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    return tmp / "one", tmp / "two", subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.slow
def test_two_processes_label_and_train_like_one(runs: tuple[Path, Path, subprocess.CompletedProcess]) -> None:
    """Teacher logits within 1e-5 of the one-process run's (the tiny teacher has no dropout, so its
    sharded fine-tuning equals one process's up to float sums); student dev scores within one point."""
    one, two, _ = runs
    np.testing.assert_allclose(logits(two / "cache"), logits(one / "cache"), atol=1e-5, rtol=0)
    a, b = scores(one / "out"), scores(two / "out")
    assert a.keys() == b.keys() and all(abs(a[m] - b[m]) <= 1.0 for m in a), (a, b)
    env = json.loads((two / "out" / "results.json").read_text())["environment"]
    assert env["processes"] == 2 and env["device"] == "cpu" and env["torch_threads"] == max(1, len(os.sched_getaffinity(0)) // 2)


@pytest.mark.slow
def test_only_rank_zero_writes(runs: tuple[Path, Path, subprocess.CompletedProcess]) -> None:
    """One copy of every artefact: the same cache entries (same keys) and output files as one process
    makes, no work folder left, and each stage line printed once."""
    one, two, proc = runs
    assert files(two / "cache") == files(one / "cache")
    assert files(two / "out") == files(one / "out")
    assert not list((two / "cache").rglob("*.partial"))
    for stage in ("teacher", "augment", "label"):
        assert len(re.findall(rf"^\[{stage}\] computing", proc.stdout, re.M)) == 1, proc.stdout
    assert len(re.findall(r"^\[student\] computing", proc.stdout, re.M)) == 2


@pytest.mark.slow
def test_a_rank_that_dies_stops_the_run(tmp_path: Path, runs: tuple[Path, Path, subprocess.CompletedProcess]) -> None:
    """Rank 1 killed while it trains: the run exits non-zero and torchrun's summary names rank 1. The
    same command under a new torchrun resumes from the cache, labels as the uninterrupted runs do, and its
    models' dev scores are the uninterrupted two-process run's exactly (the same two ranks split the same
    batches: nothing differs but the kill), as are its cache entries' files (these tiny models score near
    chance, so the weights' sha256 are the sharper check)."""
    proc = torchrun(*ARGS, "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"))
    victim, deadline = None, time.monotonic() + 300
    while victim is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        if (tmp_path / "cache" / "teacher").is_dir():  # the ranks are fine-tuning together
            victim = rank_pid(proc.pid, 1)
    assert victim is not None, "rank 1 not found while the run was going"
    os.kill(victim, 9)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert re.search(r"rank\s*:\s*1\b", stdout + stderr), (stdout + stderr)[-3000:]
    assert not (tmp_path / "out" / "results.json").exists()
    again = torchrun(*ARGS, "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"))
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr[-3000:]
    np.testing.assert_allclose(logits(tmp_path / "cache"), logits(runs[0] / "cache"), atol=1e-5, rtol=0)
    resumed, uninterrupted = scores(tmp_path / "out"), scores(runs[1] / "out")
    assert {"bilstm", "bilstm_soft"} <= resumed.keys() and resumed == uninterrupted, (resumed, uninterrupted)
    assert entry_files(tmp_path / "cache") == entry_files(runs[1] / "cache")


def entry_files(cache: Path) -> dict[str, dict]:
    """Every cache entry's manifest (each file's size and sha256), but for meta.json (its times differ run to run)."""
    return {str(path.parent.relative_to(cache)): {f: v for f, v in manifest.read(path.parent).items() if f != "meta.json"}
            for path in cache.glob(f"*/*/{manifest.NAME}")}


def rank_pid(root: int, rank: int) -> int | None:
    """The pid of the process with RANK=`rank` among `root`'s descendants (Linux /proc)."""
    children = {root}
    for _ in range(3):
        for path in Path("/proc").glob("[0-9]*/stat"):
            try:
                ppid = int(path.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid in children:
                children.add(int(path.parent.name))
    for pid in children - {root}:
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and b"harness" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    return None


@pytest.mark.slow
def test_an_error_before_any_work_is_said_once(tmp_path: Path) -> None:
    """A bad option under torchrun: every rank stops, one `error:` line (rank 0's), exit status non-zero."""
    proc = torchrun("run", "--preset", "smoke", "--set", "student.hidden=-1", "--out", str(tmp_path / "out"))
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert [line for line in stderr.splitlines() if line.startswith("error:")] == \
        ["error: rank 0: student.hidden and student.fc must be >= 1"], stderr[-2000:]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_smoke_on_cuda(tmp_path: Path, data_root: Path) -> None:
    """The smoke preset on the GPU: every stage there (same code, another device), a bf16 teacher."""
    proc = harness("run", "--preset", "smoke", "--device", "cuda", "--set", "teacher.precision=bf16",
                   "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["environment"]["device"].startswith("cuda")
    assert results["tasks"]["sst2"]["models"]["bilstm_soft"]["scores"]["dev"]["accuracy"] > 70


def encoders() -> list[tuple[str, torch.nn.Module]]:
    """Two tiny encoders with dropout everywhere: BERT (attention dropout inside SDPA) and MPNet (an nn.Dropout)."""
    from transformers import BertConfig, BertForSequenceClassification, MPNetConfig, MPNetForSequenceClassification

    sizes = {"vocab_size": 60, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32,
             "hidden_dropout_prob": 0.3, "attention_probs_dropout_prob": 0.3, "num_labels": 3}
    torch.manual_seed(0)
    bert = BertForSequenceClassification(BertConfig(**sizes, attn_implementation="sdpa"))
    mpnet = MPNetForSequenceClassification(MPNetConfig(**sizes))
    return [("bert", bert.train()), ("mpnet", mpnet.train())]


def forward(model: torch.nn.Module, rows: np.ndarray, mode=None) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """Logits and gradients of `rows` of a fixed 5-row batch (padded to its length, 11) from seed 0, and
    the generator's state after; under `mode` when given. The loss is the batch mean, as in training."""
    lengths = [11, 4, 9, 11, 6]
    ids = torch.arange(5 * 11).reshape(5, 11) % 57 + 3
    mask = (torch.arange(11) < torch.tensor(lengths)[:, None]).long()
    model.zero_grad()
    torch.manual_seed(0)
    with mode or contextlib.nullcontext():
        logits = model(input_ids=ids[rows], attention_mask=mask[rows]).logits
    (logits.square().sum() / 5).backward()
    return logits.detach(), [p.grad.clone() for p in model.parameters()], torch.get_rng_state()


@pytest.mark.parametrize("name, model", encoders())
def test_shared_dropout_draws_one_process_masks(name: str, model: torch.nn.Module) -> None:
    """In one process the shared-mask dropout is the stock dropout bit for bit (logits, gradients,
    generator), so a torchrun teacher trains like a one-process one; each of two ranks, given its rows
    of the batch, gets the one-process rows' logits, and their gradients sum to the one-process gradients."""
    from harness.engine.device import SharedDropout

    everything = np.arange(5)
    logits, grads, rng = forward(model, everything)
    same = forward(model, everything, SharedDropout(5, 0, 1))
    assert torch.equal(same[0], logits) and all(torch.equal(a, b) for a, b in zip(same[1], grads)) and torch.equal(same[2], rng)
    ranks = [forward(model, everything[r::2], SharedDropout(5, r, 2)) for r in (0, 1)]
    for r, (part, _, after) in enumerate(ranks):
        torch.testing.assert_close(part, logits[r::2], atol=1e-6, rtol=0)
        assert torch.equal(after, rng)  # the ranks' generators stay equal
    for total, a, b in zip(grads, ranks[0][1], ranks[1][1]):
        torch.testing.assert_close(a + b, total, atol=1e-6, rtol=0)
    own_masks = forward(model, everything[1::2])[0]  # rank 1 drawing its own masks, as before
    assert not torch.allclose(own_masks, logits[1::2], atol=1e-3)
