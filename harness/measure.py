"""The one module that times things: warm-up, fixed threads, perf_counter, percentiles.

Two regimes: `interactive` (batch 1, one sentence per call, over dev sentences) and `offline`
(the paper's: training sentences in batches of 512; when only a subset is timed, the whole-set
time is projected and labelled so). Timings include tokenisation: text in, logits out.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

SST2_TRAIN_SENTENCES = 67_349


def set_threads(threads: int) -> int:
    """Fix intra-op threads (0 = all usable cores) and return the number in force."""
    import os

    n = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    return torch.get_num_threads()


def time_calls(fn: Callable[[list], object], batches: Sequence[list], warmup: int) -> list[float]:
    """Seconds per call of `fn` on each batch, after `warmup` untimed calls."""
    for batch in list(batches)[:warmup]:
        fn(batch)
    times = []
    for batch in batches:
        start = time.perf_counter()
        fn(batch)
        times.append(time.perf_counter() - start)
    return times


def summarise(times: Sequence[float], items: int) -> dict:
    ms = np.asarray(times) * 1000
    return {
        "calls": len(times),
        "items": items,
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "stdev_ms": float(statistics.pstdev(ms)) if len(ms) > 1 else 0.0,
        "total_s": float(ms.sum() / 1000),
        "sentences_per_s": float(items / (ms.sum() / 1000)),
    }


def interactive(logits: Callable[[list, int], np.ndarray], texts: Sequence[tuple], warmup: int) -> dict:
    """Batch-1 latency over `texts`, one call per sentence."""
    times = time_calls(lambda b: logits(b, 1), [[t] for t in texts], warmup)
    return {"regime": "interactive", "batch_size": 1, **summarise(times, len(texts))}


def offline(logits: Callable[[list, int], np.ndarray], texts: Sequence[tuple], batch_size: int,
            whole_set: int = SST2_TRAIN_SENTENCES) -> dict:
    """The paper's regime: `texts` in batches of `batch_size`; the time for `whole_set` sentences is
    measured when all of them were timed and projected from the rate otherwise."""
    batches = [list(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    times = time_calls(lambda b: logits(b, batch_size), batches, warmup=1)
    stats = summarise(times, len(texts))
    projected = len(texts) < whole_set
    stats.update(
        regime="offline",
        batch_size=batch_size,
        whole_set=whole_set,
        whole_set_s=stats["total_s"] if not projected else whole_set / stats["sentences_per_s"],
        projected_from=len(texts) if projected else None,
    )
    return stats
