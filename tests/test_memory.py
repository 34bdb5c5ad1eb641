"""Peak resident memory per stage (harness/core/memory.py): a stage that holds 400 MB records at least that,
the next stage, which holds none of it, records less, and the run's peak keeps the larger."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.core import memory
from harness.engine.cache import Store
from harness.engine.stages import cached

SIZE_GB = 400 / 1024


def hold(gb: float) -> np.ndarray:
    """`gb` of memory, written to, so that it is resident."""
    block = np.empty(int(gb * 2**30), dtype=np.uint8)
    block[::4096] = 1  # every page
    return block


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-stage peaks need Linux's /proc/self/clear_refs")
def test_each_stage_records_its_own_peak(tmp_path: Path) -> None:
    store = Store(tmp_path)

    def heavy(work: Path) -> dict:
        block = hold(SIZE_GB)
        return {"sum": int(block[::4096].sum())}

    _, big = cached(store, "augment", "heavy", heavy)
    _, small = cached(store, "augment", "light", lambda work: {})
    assert big["peak_rss_scope"] == small["peak_rss_scope"] == "stage"
    assert big["peak_rss_gb"] >= SIZE_GB, big
    assert small["peak_rss_gb"] <= big["peak_rss_gb"] - SIZE_GB + 0.05, (small, big)  # the block was freed
    assert memory.run_peak_gb() >= big["peak_rss_gb"]  # the run's peak survives the light stage's reset
    _, again = cached(store, "augment", "heavy", heavy)
    assert again["cached"] and again["peak_rss_gb"] == big["peak_rss_gb"]  # reused: its first run's figure


# In a fresh interpreter (its peak is its own, whatever earlier tests held): hold the block, free it, read the figure
# without a reset; then reset the peak as each stage does and read it again.
PEAK_AFTER_A_FREED_BLOCK = f"""
import json
import numpy as np
from harness.core import memory

def rss_gb() -> float:
    line = next(x for x in open("/proc/self/status") if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 2**20

before = rss_gb()
block = np.empty(int({SIZE_GB} * 2**30), dtype=np.uint8)
block[::4096] = 1
del block
after, unreset = rss_gb(), memory.peak(since_reset=False)
reset = memory.reset_peak()
print(json.dumps({{"before": before, "after": after, "unreset": unreset, "reset": reset,
                  "stage": memory.peak(since_reset=True), "process": memory.peak(since_reset=False)}}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmRSS from Linux's /proc/self/status")
def test_without_a_reset_the_figure_is_the_processes_peak() -> None:
    """peak(since_reset=False) is the most the process ever held: a block it freed, and held before a reset, counts."""
    proc = subprocess.run([sys.executable, "-c", PEAK_AFTER_A_FREED_BLOCK], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["after"] < got["before"] + 0.05, got  # the block is freed: what the process holds now is not the peak
    assert got["reset"] and got["stage"]["peak_rss_gb"] < got["before"] + 0.05, got  # the kernel's peak was reset
    for seen in (got["unreset"], got["process"]):  # before and after the reset
        assert seen["scope"] == "process" and seen["peak_rss_gb"] >= round(got["before"] + SIZE_GB, 2) - 0.01, got


def test_the_report_names_each_peak() -> None:
    """The stage table's column says when a figure is the run's so far; the timing line takes each model's largest."""
    from harness.results.report import peak_words
    from harness.results.speed_tables import timing_memory_words

    assert peak_words({"peak_rss_gb": 1.5, "peak_rss_scope": "stage"}) == "1.50"
    assert peak_words({"peak_rss_gb": 1.5, "peak_rss_scope": "process"}) == "1.50 (run so far)"
    assert peak_words({"seconds": 3}) == "–"  # results.json from before the field
    models = {"teacher": {"speed": [{"backend": "torch", "peak_rss_gb": 2.0}, {"backend": "onnx", "peak_rss_gb": 3.1}]},
              "bilstm": {"speed": [{"backend": "torch", "peak_rss_gb": 1.2}]}, "noaug": {"scores": {}}}
    assert timing_memory_words(models) == (" Timing each model (its exports, timed passes and backend scores) peaked at "
                                           "teacher 3.10 GB (onnx), bilstm 1.20 GB (torch).")
    assert timing_memory_words({"bilstm": {"speed": [{"backend": "torch"}]}}) == ""
