"""The one module that times things: warm-up, fixed threads, perf_counter, percentiles.

Two regimes: `interactive` (batch 1, one sentence per call, over dev sentences) and `offline`
(the paper's: training sentences in batches of 512; when only a subset is timed, the whole-set
time is projected and labelled so). Timings include tokenisation: text in, logits out. On a GPU
every timed call ends with `torch.cuda.synchronize()`, so queued kernels are inside the timing.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

SST2_TRAIN_SENTENCES = 67_349
# Other processes' share of the machine above which a timing is flagged as taken on a busy machine: a
# concurrent job once cut a student's in-run speed-up 13x. One busy core of two is 0.5; the kernel
# counts CPU time in 10 ms ticks, so short blocks carry a few percent of rounding.
BUSY_SHARE = 0.15
BUSY_MIN_S = 0.05  # ...and above this many CPU-seconds, so that one tick in a short block flags nothing


def machine_busy_s() -> float | None:
    """CPU-seconds every process on the machine has run since boot, all cores (/proc/stat; None elsewhere)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # user..steal; guest time is inside user


@contextlib.contextmanager
def conditions() -> Iterator[dict]:
    """What else ran while a block was timed. The dict it yields is filled on exit: wall and this
    process's CPU seconds, the 1-minute load average before and after, and `others_share`, the share
    of the machine's cores (0-1) that other processes (and, on a VM, the hypervisor's steal) used
    meanwhile; `busy` when that passed BUSY_SHARE."""
    out: dict = {}
    wall, cpu, busy, load = time.perf_counter(), time.process_time(), machine_busy_s(), os.getloadavg()[0]
    yield out
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    out.update(wall_s=round(wall, 4), cpu_s=round(cpu, 4), load_1m=[round(load, 2), round(os.getloadavg()[0], 2)])
    end = machine_busy_s()
    if busy is not None and end is not None and wall > 0:
        others = max(0.0, end - busy - cpu)
        out["others_share"] = round(others / (wall * (os.cpu_count() or 1)), 3)
        out["busy"] = out["others_share"] > BUSY_SHARE and others > BUSY_MIN_S


@contextlib.contextmanager
def threads_for(threads: int) -> Iterator[int]:
    """Run a block with `threads` intra-op threads (0 = all usable cores), then restore the count."""
    before = torch.get_num_threads()
    try:
        yield set_threads(threads)
    finally:
        torch.set_num_threads(before)


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS has one (Linux), else every core
    (macOS and Windows have no os.sched_getaffinity)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def set_threads(threads: int) -> int:
    """Fix intra-op threads (0 = all usable cores) and return the number in force."""
    n = threads or usable_cores()
    torch.set_num_threads(n)
    return torch.get_num_threads()


def synchronizer(device: str) -> Callable[[], None]:
    """What ends a timed call on `device`: waiting for CUDA's queue, or nothing on the CPU."""
    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def time_calls(fn: Callable[[list], object], batches: Sequence[list], warmup: Sequence[list],
               device: str = "cpu") -> list[float]:
    """Seconds per call of `fn` on each of `batches`, after untimed calls on the `warmup` batches."""
    sync = synchronizer(device)
    for batch in warmup:
        fn(batch)
    sync()
    times = []
    for batch in batches:
        start = time.perf_counter()
        fn(batch)
        sync()
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


def interactive(logits: Callable[[list, int], np.ndarray], texts: Sequence[tuple], warmup: int,
                device: str = "cpu", passes: int = 1) -> dict:
    """Batch-1 latency over `texts`, one call per sentence, after `warmup` untimed sentences.

    With `passes` > 1 the sample is timed that many times over and the percentiles pool every call,
    so a burst of load from elsewhere moves them less; each pass's median is kept (`pass_p50_ms`) to
    show the spread within the run."""
    batches = [[t] for t in texts]
    times = time_calls(lambda b: logits(b, 1), batches * passes, batches[:warmup], device)
    per_pass = [float(np.percentile(times[i : i + len(batches)], 50)) * 1000 for i in range(0, len(times), len(batches))]
    return {"regime": "interactive", "batch_size": 1, "passes": passes, "pass_p50_ms": per_pass,
            **summarise(times, len(times))}


def offline(logits: Callable[[list, int], np.ndarray], texts: Sequence[tuple], batch_size: int,
            whole_set: int = SST2_TRAIN_SENTENCES, warmup_n: int | None = None, device: str = "cpu",
            min_calls: int = 1, min_s: float = 0.0, max_s: float = 0.0) -> dict:
    """The paper's regime: `texts` in batches of `batch_size`; the time for `whole_set` sentences is
    measured when all of them were timed and projected from the rate otherwise. Warm-up runs the
    first `warmup_n` sentences (default one whole batch) untimed.

    A small or fast sample is timed again, whole passes at a time, while fewer than `min_calls` calls
    have been timed or the passes so far took under `min_s` seconds, and they took under `max_s`; the
    time of a pass is then the median pass (`total_s`; every pass in `pass_s`), so one pass slowed by
    load from elsewhere does not move it. A large, slow sample is timed once: its many calls average out."""
    batches = [list(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    warmup = [list(texts[: warmup_n or batch_size])]
    call = lambda b: logits(b, batch_size)  # noqa: E731
    times = time_calls(call, batches, warmup, device)
    pass_s = [sum(times)]
    while (len(times) < min_calls or sum(pass_s) < min_s) and sum(pass_s) < max_s:
        again = time_calls(call, batches, [], device)
        times += again
        pass_s.append(sum(again))
    stats = summarise(times, len(texts) * len(pass_s))
    median_pass = float(np.median(pass_s))
    projected = len(texts) < whole_set
    stats.update(
        regime="offline",
        batch_size=batch_size,
        items=len(texts),
        passes=len(pass_s),
        pass_s=[float(s) for s in pass_s],
        total_s=median_pass,
        sentences_per_s=len(texts) / median_pass,
        whole_set=whole_set,
        whole_set_s=median_pass if not projected else whole_set / (len(texts) / median_pass),
        projected_from=len(texts) if projected else None,
    )
    return stats
