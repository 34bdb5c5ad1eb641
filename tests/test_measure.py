"""The timing module and the efficiency report built on it (no wall-clock asserts: counts, shapes,
projections and ratios computed from given numbers)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.core.config import MeasureConfig, RunConfig, StatsConfig
from harness.core.registry import TASKS
from harness.data.split import Split
from harness.results.speed_tables import efficiency_table, int8_lines
from harness.scoring import backend_dev
from harness.speed import efficiency, measure


def test_warmup_calls_are_not_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every batch is timed once, after the warm-up batches ran untimed: on a clock that moves only while a
    call runs, by the batch's value in seconds, the times are exactly the timed batches' values."""
    calls: list[list] = []
    clock = [0.0]

    def call(batch: list) -> None:
        calls.append(batch)
        clock[0] += batch[0]

    monkeypatch.setattr(measure.time, "perf_counter", lambda: clock[0])
    times = measure.time_calls(call, [[1], [2], [3]], warmup=[[100], [100]])
    assert times == [1.0, 2.0, 3.0]  # warm-up calls (100 s each) in none of them
    assert calls == [[100], [100], [1], [2], [3]]


def test_summary_percentiles_and_throughput() -> None:
    stats = measure.summarise([0.001 * k for k in range(1, 101)], items=100)
    assert stats["p50_ms"] == pytest.approx(50.5) and stats["p99_ms"] == pytest.approx(99.01)
    assert stats["sentences_per_s"] == pytest.approx(100 / sum(0.001 * k for k in range(1, 101)))


def test_interactive_passes_pool_every_call_and_keep_each_pass_median() -> None:
    """Three passes over 4 sentences: 2 warm-up calls, then 12 timed batch-1 calls in sentence order,
    percentiles over all 12, one median per pass."""
    seen: list = []
    texts = [(f"s{i}",) for i in range(4)]
    stats = measure.interactive(lambda batch, bs: seen.append((batch[0][0], bs)), texts, warmup=2, passes=3)
    assert seen == [("s0", 1), ("s1", 1)] + [(f"s{i}", 1) for i in range(4)] * 3
    assert stats["calls"] == stats["items"] == 12 and stats["passes"] == 3 and len(stats["pass_p50_ms"]) == 3


def test_offline_projects_a_subset_and_says_so() -> None:
    """Timing 1,000 of 67,349 sentences projects the whole set from the rate and records from what."""
    texts = [("a b c",)] * 1000
    seen: list[int] = []
    stats = measure.offline(lambda batch, bs: seen.append(len(batch)), texts, batch_size=512, warmup_n=64)
    assert seen == [64, 512, 488]
    assert stats["projected_from"] == 1000 and stats["whole_set"] == 67_349
    assert stats["whole_set_s"] == pytest.approx(67_349 / stats["sentences_per_s"])
    full = measure.offline(lambda batch, bs: None, texts, batch_size=512, whole_set=1000)
    assert full["projected_from"] is None and full["whole_set_s"] == full["total_s"]


def test_offline_times_a_small_sample_again_and_keeps_the_median_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two batches with min_calls 8 are timed in 4 passes; one slow pass (load from elsewhere) does not
    move the time, and max_s stops the passes early."""
    pass_times = iter([[1.0, 1.0], [9.0, 9.0], [1.1, 1.1], [1.2, 1.2], [5.0, 5.0]])
    monkeypatch.setattr(measure, "time_calls", lambda fn, batches, warmup, device: next(pass_times))
    texts = [("a b",)] * 1000
    stats = measure.offline(lambda batch, bs: None, texts, batch_size=512, min_calls=8, max_s=60)
    assert stats["passes"] == 4 and stats["calls"] == 8 and stats["pass_s"] == [2.0, 18.0, 2.2, 2.4]
    assert stats["total_s"] == pytest.approx(2.3) and stats["sentences_per_s"] == pytest.approx(1000 / 2.3)
    assert stats["whole_set_s"] == pytest.approx(67_349 / 1000 * 2.3)
    pass_times = iter([[1.0, 1.0], [9.0, 9.0], [1.1, 1.1]])
    assert measure.offline(lambda batch, bs: None, texts, batch_size=512, min_calls=8, max_s=3)["passes"] == 2



def test_offline_times_a_fast_sample_until_min_s(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many calls, but a pass of 0.3 s: passes go on until 1 s is timed (3 passes), and the median pass counts,
    not the one slowed by load from elsewhere."""
    pass_times = iter([[0.01] * 30, [0.02] * 30, [0.0105] * 30, [5.0] * 30])
    monkeypatch.setattr(measure, "time_calls", lambda fn, batches, warmup, device: next(pass_times))
    stats = measure.offline(lambda batch, bs: None, [("a b",)] * 30, batch_size=1, min_calls=8, min_s=1.0, max_s=60)
    assert stats["passes"] == 3 and stats["total_s"] == pytest.approx(0.315)
    pass_times = iter([[0.01] * 30])
    assert measure.offline(lambda batch, bs: None, [("a b",)] * 30, batch_size=1, min_calls=8, max_s=60)["passes"] == 1


class FakeTeacher:
    autocast = None


@pytest.mark.parametrize(("kind", "expected"), [
    ("student", [("torch", "cpu", "fp32"), ("onnx", "cpu", "fp32"), ("onnx-int8", "cpu", "int8")]),
    ("teacher", [("torch", "cpu", "fp32"), ("onnx", "cpu", "fp32")]),
    ("reference", [("torch", "cpu", "fp32")]),
])
def test_variants_per_kind_on_cpu(kind: str, expected: list) -> None:
    """ONNX for trained models, int8 for students only; CUDA only when asked for and present."""
    assert efficiency.variants(kind, FakeTeacher(), MeasureConfig(devices=("cpu",))) == expected


def timing(whole_set_s: float, p50: float, backend: str = "torch", **extra) -> dict:
    inter = {"p50_ms": p50, "p90_ms": p50, "p99_ms": p50, "mean_ms": p50, "stdev_ms": 0.0}
    off = {"whole_set_s": whole_set_s, "projected_from": None, "whole_set": 67_349, "batch_size": 512, "sentences_per_s": 1.0}
    return {"backend": backend, "device": "cpu", "dtype": "int8" if backend.endswith("int8") else "fp32",
            "interactive": inter, "offline": off, **extra}


def model(kind: str, params: int, non_emb: int, speed: list, dev: float | None = None) -> dict:
    return {"kind": kind, "scores": {"dev": {"accuracy": dev}} if dev is not None else {},
            "params_total": params, "params_non_embedding": non_emb, "speed": speed}


def test_efficiency_table_ratios_come_from_the_same_run() -> None:
    """Speed-ups are the references' measured whole-set seconds over the model's; the parameter
    ratio is the paper's (BERT-large total over the student's count without embeddings)."""
    models = {
        "teacher": model("teacher", 22_000_000, 11_000_000, [timing(500.0, 10.0)], 88.0),
        "bilstm_soft": model("student", 12_000_000, 1_000_000,
                             [timing(25.0, 2.0), timing(5.0, 1.0, "onnx-int8", scores={"accuracy": 85.0})], 86.0),
        "bert_large": model("reference", 335_000_000, 334_000_000, [timing(10_000.0, 300.0)]),
        "elmo": model("reference", 93_600_000, 93_595_000, [timing(2_000.0, 100.0)]),
    }
    row = efficiency_table(models).set_index("model").loc["bilstm_soft"]
    assert row["offline speed-up vs BERT-large"] == "400.0x"
    assert row["offline speed-up vs ELMo"] == "80.0x"
    assert row["offline speed-up vs teacher"] == "20.0x"
    assert row["BERT-large params / these (excl. emb.)"] == "335x"
    assert int8_lines(models) == ["- `bilstm_soft` dynamic int8 (ONNX Runtime): dev accuracy 85.00 vs fp32 86.00 (-1.00)"]
    # with its paired test (results from before every seed was scored: against the timed seed's fp32 outputs, not
    # the seeds' mean): the test's difference and p
    models["bilstm_soft"]["speed"][1]["test"] = {"against": "torch fp32", "dev": {"accuracy": {
        "difference": 1.5, "p": 0.0412, "test": "McNemar exact", "significant": True}}}
    assert int8_lines(models) == ["- `bilstm_soft` dynamic int8 (ONNX Runtime): dev accuracy 85.00 vs fp32 83.50 "
                                  "(+1.50; McNemar exact, p = 0.0412: more than noise)"]
    models["bilstm_soft"]["speed"][1]["seeds_scored"] = 3  # every seed scored: the line says how many
    assert int8_lines(models)[0].startswith("- `bilstm_soft` dynamic int8 (ONNX Runtime, 3 seeds): dev accuracy 85.00 vs")
    assert "67,349 sentences, batch 512, s" in row.index
    assert "67,349 pairs, batch 512, s" in efficiency_table(models, unit="pairs").columns


class FixedOutputs:
    """A backend whose dev logits are given: `logits` returns them, whatever the texts."""

    def __init__(self, logits: np.ndarray) -> None:
        self.out = logits

    def logits(self, texts: list, batch_size: int) -> np.ndarray:
        assert len(texts) == len(self.out)
        return self.out


def test_a_backend_is_tested_against_its_pytorch_outputs() -> None:
    """An ONNX backend's dev scores and its paired test against the same model's PyTorch fp32 outputs, on the
    same examples: identical answers differ by 0 (p = 1); 20 of 200 right answers turned wrong are a
    significant loss of 10 points; without resamples there is no test."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    dev = Split([(f"s{i}",) for i in range(200)], labels.tolist(), "dev")
    fp32 = np.eye(2, dtype=np.float32)[labels]  # right on every example
    score = backend_dev(TASKS.get("sst2"), dev, [fp32], [], RunConfig())
    same = score(FixedOutputs(fp32.copy()), None)
    assert same["scores"]["accuracy"] == 100.0
    assert same["test"]["against"] == "torch fp32"
    assert same["test"]["dev"]["accuracy"]["difference"] == 0 and same["test"]["dev"]["accuracy"]["p"] == 1
    worse = fp32.copy()
    worse[:20] = worse[:20, ::-1]  # the first 20 answers flipped
    tested = score(FixedOutputs(worse), None)
    assert tested["scores"]["accuracy"] == 90.0
    test = tested["test"]["dev"]["accuracy"]
    assert test["difference"] == pytest.approx(-10.0) and test["significant"] and test["test"] == "McNemar exact"
    untested = backend_dev(TASKS.get("sst2"), dev, [fp32], [], RunConfig(stats=StatsConfig(resamples=0)))
    untested = untested(FixedOutputs(worse), None)
    assert untested == {"scores": {"accuracy": 90.0}, "seeds_scored": 1}


def test_a_backend_is_scored_on_every_seed() -> None:
    """With several seeds, each seed's model goes on the backend (`same_backend`, with its own folder) and the
    backend's score is the mean over seeds, tested against every seed's PyTorch outputs: the timed seed alone
    right and the other two's 20 flipped answers give 100 and 90, 90 -> 93.33 against fp32's 100."""
    labels = np.random.default_rng(0).integers(0, 2, 200)
    dev = Split([(f"s{i}",) for i in range(200)], labels.tolist(), "dev")
    fp32 = np.eye(2, dtype=np.float32)[labels]
    worse = fp32.copy()
    worse[:20] = worse[:20, ::-1]
    made = []

    def same_backend(predictor, folder):
        made.append(folder)
        return FixedOutputs(predictor)

    score = backend_dev(TASKS.get("sst2"), dev, [fp32, fp32, fp32], [(worse, "seed-14"), (worse, "seed-15")], RunConfig())
    entry = score(FixedOutputs(fp32), same_backend)
    assert made == ["seed-14", "seed-15"] and entry["seeds_scored"] == 3
    assert entry["scores"]["accuracy"] == pytest.approx(93.333, abs=1e-3)
    test = entry["test"]["dev"]["accuracy"]
    assert test["difference"] == pytest.approx(-6.667, abs=1e-3) and test["test"].startswith("paired permutation")
