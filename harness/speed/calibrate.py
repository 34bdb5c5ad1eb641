"""Calibration workloads: a fixed model of each kind, timed right around every model's own timing,
so that the speeds the CI gate keeps are in units of this machine's speed at that kind of work.

Why: in-run ratios remove a machine's speed but not its shape. The smoke students' offline pass ran
157x faster than the MiniLM teacher on a 2-core AMD EPYC and 60x on a 2-core Intel Xeon (Sapphire
Rapids class), so a baseline of "speed-up vs teacher" made on one kind failed on the other (issue 25):
LSTMs and transformers do not scale alike across CPU kinds. A model's time divided by the time of a
fixed workload of its own kind (a plain BiLSTM for recurrent models, one BERT layer for
transformers), timed with the same threads just before and just after it, cancels the machine's
speed and, to first order, its shape; a model made slower by its own code still shows in full.

A predictor names its workload with a `calibration` attribute (`recurrent` or `transformer`); without
one, a teacher is timed against `transformer` and every other model against `recurrent`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import torch
from torch import nn


@dataclass(frozen=True)
class Workload:
    """A fixed model and its fixed inputs for each regime.

    Args:
        description: what it is, for reports.
        build: the model, seeded (timing does not depend on the weights' values).
        inputs: batch size -> the model's positional inputs.
        offline_batch: the batch of one offline call (interactive calls are batch 1).
        calls: (interactive, offline) timed calls on each side of the model's own timing.
    """

    description: str
    build: Callable[[], nn.Module]
    inputs: Callable[[int], tuple]
    offline_batch: int
    calls: tuple[int, int]


def _lstm() -> nn.Module:
    torch.manual_seed(0)
    return nn.LSTM(300, 150, batch_first=True, bidirectional=True).eval()


def _bert_layer() -> nn.Module:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=1, num_attention_heads=12,
                        intermediate_size=1536, max_position_embeddings=512)
    return BertModel(config, add_pooling_layer=False).eval()


def _lstm_inputs(batch: int) -> tuple:
    return (torch.randn(batch, 20, 300, generator=torch.Generator().manual_seed(0)),)  # (B, T, 300)


def _bert_inputs(batch: int) -> tuple:
    ids = torch.randint(1000, 30000, (batch, 32), generator=torch.Generator().manual_seed(0))  # (B, T)
    return ids, torch.ones_like(ids)


WORKLOADS = {
    # 20 steps: about twice an SST-2 training phrase; batches of 128 and 16 keep an offline call near
    # 0.05 s on 2 cores, so the 2 x 4 calls around a model add well under a second
    "recurrent": Workload("one BiLSTM layer, 300 in, 150 hidden, 20 steps", _lstm, _lstm_inputs, 128, (30, 4)),
    "transformer": Workload("one BERT layer, 384 wide, 12 heads, 32 tokens", _bert_layer, _bert_inputs, 16, (30, 4)),
}


def family(predictor, kind: str) -> str:
    """The workload `predictor` is timed against."""
    return getattr(predictor, "calibration", None) or ("transformer" if kind == "teacher" else "recurrent")


@cache
def _model(name: str) -> nn.Module:
    return WORKLOADS[name].build()


def time_workload(name: str, regime: str) -> list[float]:
    """Seconds per call of workload `name` in `regime` (interactive: batch 1; offline: its batch),
    after one untimed call, with the threads in force."""
    w = WORKLOADS[name]
    model, interactive = _model(name), regime == "interactive"
    inputs = w.inputs(1 if interactive else w.offline_batch)
    times = []
    with torch.inference_mode():
        model(*inputs)
        for _ in range(w.calls[0 if interactive else 1]):
            start = time.perf_counter()
            model(*inputs)
            times.append(time.perf_counter() - start)
    return times


def around(name: str, regime: str, timed: Callable[[], dict]) -> dict:
    """`timed()`'s statistics, with the workload's time per call (the median of the calls made just
    before and just after it) under `calibration`."""
    before = time_workload(name, regime)
    stats = timed()
    after = time_workload(name, regime)
    return {**stats, "calibration": {"workload": name, "description": WORKLOADS[name].description,
                                     "batch": 1 if regime == "interactive" else WORKLOADS[name].offline_batch,
                                     "ms": statistics.median(before + after) * 1000,
                                     "ms_before": statistics.median(before) * 1000,
                                     "ms_after": statistics.median(after) * 1000}}


def calibrated_speed(stats: dict, regime: str) -> float | None:
    """A timing in calibration units: the workload's time per call over the model's time per sentence
    (offline) or per batch-1 call (interactive, the p50). Higher is faster; None when the timing has
    no calibration.

    Each side is taken at its best: the quicker of the workload's two brackets, the model's fastest
    pass (offline passes, batch-1 passes' medians). Load from elsewhere, a VM's steal included, only
    ever slows a block; in a clean-clone CI run a burst that took 17-37% of the machine during one
    student's timing cut its median-based figure to 0.60x of the baseline, while a model slowed by its
    own code is slow in every pass."""
    cal = stats.get("calibration")
    if not cal:
        return None
    workload_ms = min(cal.get("ms_before", cal["ms"]), cal.get("ms_after", cal["ms"]))
    if regime == "offline":
        per_item_ms = (min(stats["pass_s"]) * 1000 / stats["items"] if stats.get("pass_s")
                       else stats["whole_set_s"] * 1000 / stats["whole_set"])
    else:
        per_item_ms = min(stats.get("pass_p50_ms") or [stats["p50_ms"]])
    return workload_ms / per_item_ms if per_item_ms else None
