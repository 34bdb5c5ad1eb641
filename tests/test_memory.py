"""Peak resident memory per stage (harness/core/memory.py): a stage that holds 400 MB records at least that,
the next stage, which holds none of it, records less, and the run's peak keeps the larger."""

from __future__ import annotations

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


def test_without_a_reset_the_figure_is_the_processes_peak() -> None:
    block = hold(SIZE_GB)
    seen = memory.peak(since_reset=False)
    del block
    assert seen["scope"] == "process" and seen["peak_rss_gb"] >= SIZE_GB


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
