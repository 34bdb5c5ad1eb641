"""`harness compare`: its output is pinned by a golden file built from two small synthetic runs.

tests/golden/run_a and run_b hold hand-made results.json files (teacher, two students with ONNX and int8
timings, ablation variants, a reference). To accept a deliberate formatting change, regenerate with
`UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_compare.py` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.compare import compare, speed_rows
from harness.errors import HarnessError

GOLDEN = Path(__file__).parent / "golden"
RUNS = [GOLDEN / "run_a", GOLDEN / "run_b"]


def test_compare_matches_golden() -> None:
    """Scores (variants and int8 included), latency and in-run speed ratios, with deltas, exactly as pinned."""
    text = compare(RUNS) + "\n"
    if os.environ.get("UPDATE_GOLDEN"):
        (GOLDEN / "compare.md").write_text(text)
    assert text == (GOLDEN / "compare.md").read_text()


def test_compare_labels_and_results_paths() -> None:
    """Columns can be renamed, and a results.json path works like its folder."""
    text = compare([RUNS[0] / "results.json", RUNS[1]], ["before", "after"])
    assert "| before " in text and "| Δ after " in text


def test_speed_ratios_are_in_run() -> None:
    """A student's speed-up over the teacher is the ratio of their whole-set times in the same run."""
    import json

    rows = speed_rows(json.loads((RUNS[0] / "results.json").read_text()))
    assert rows[("sst2", "bilstm", "offline speed-up vs teacher")] == pytest.approx(400.0 / 4.0)
    assert rows[("sst2", "bilstm", "batch-1 speed-up vs teacher")] == pytest.approx(20.0 / 2.0)
    assert ("sst2", "bilstm_soft_noaug", "offline speed-up vs teacher") not in rows  # variants are not timed


def test_compare_needs_shared_rows(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text('{"tasks": {}}')
    with pytest.raises(HarnessError, match="share no"):
        compare([RUNS[0], tmp_path])
