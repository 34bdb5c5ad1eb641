"""`harness compare`: its output is pinned by a golden file built from two small synthetic runs.

tests/golden/run_a and run_b hold hand-made results.json files (teacher, two students with ONNX and int8
timings, ablation variants, a reference); run_b records each model's role, run_a (older results) leaves
it to be inferred, and both give the same GLUE average rows, one per role (each role has one model). To
accept a deliberate formatting change, re-take it with `.venv/bin/python tests/retake_golden.py compare` and review
the diff (tests/golden_files.py: a test never writes its golden file).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from golden_files import RETAKE, refuse_retake_switches

from harness.core.errors import HarnessError
from harness.results.compare import compare, glue_rows, speed_rows

GOLDEN = Path(__file__).parent / "golden"
RUNS = [GOLDEN / "run_a", GOLDEN / "run_b"]


def test_compare_matches_golden() -> None:
    """Scores (variants and int8 included), latency and in-run speed ratios, with deltas, exactly as pinned."""
    refuse_retake_switches()
    text = compare(RUNS) + "\n"
    assert text == (GOLDEN / "compare.md").read_text(), f"tests/golden/compare.md differs: if deliberate, `{RETAKE} compare`"


def test_compare_names_what_differs_between_the_runs(tmp_path: Path) -> None:
    """After the table: each run's commit and machine, a warning when the machines differ (latencies are then
    times on different hardware), and per task the settings and data that differ, older field names mapped."""
    results = json.loads((RUNS[1] / "results.json").read_text())
    results["environment"]["cpu"] = "Other CPU"
    results["tasks"]["sst2"]["data"]["selection"] = {"examples": 75}
    results["config"]["student"] = {"embedding": "teacher", "epochs": 3}
    (tmp_path / "results.json").write_text(json.dumps(results))
    first = json.loads((RUNS[0] / "results.json").read_text())
    first["config"]["student"] = {"embedding": "teacher", "arch": {"epochs": 3}}  # the plugin's settings, older name
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "results.json").write_text(json.dumps(first))
    text = compare([tmp_path / "a", tmp_path], ["a", "b"])
    tail = text[text.index("How the runs differ"):].splitlines()
    assert tail[1:4] == ["- a: commit aaaa111, Synthetic CPU", "- b: commit bbbb222, Other CPU",
                         "- The runs ran on different machines: their `batch-1 p50 ms` rows are times on different "
                         "hardware; the speed-up and calibrated-speed rows are ratios measured within each run and do "
                         "compare."]
    assert tail[4] == "- sst2: 1 setting(s) differ (a / b): `checkpoints chosen on` dev / selection split"
    assert compare(RUNS).splitlines()[-1] == "- sst2: the same data sizes, checkpoint choice and settings in every run"


def test_compare_and_report_from_python(tmp_path: Path) -> None:
    """`harness.compare` gives the command's text for paths as strings; `harness.report` re-renders a committed run
    (one from before the selection split) as the command does; a wrong number of labels is a HarnessError."""
    import shutil

    import harness

    assert harness.compare([str(r) for r in RUNS]) + "\n" == (GOLDEN / "compare.md").read_text()
    with pytest.raises(HarnessError, match="--labels has 1 names for 2 runs"):
        harness.compare(RUNS, ["one"])
    shutil.copy(Path(__file__).parent.parent / "reports" / "qqp-large" / "results.json", tmp_path)
    path = harness.report(str(tmp_path))
    assert path == tmp_path / "report.md" and path.read_text().startswith("# Distillation report: suite `glue`")
    assert (tmp_path / "plot.png").stat().st_size > 0


def test_compare_labels_and_results_paths() -> None:
    """Columns can be renamed, and a results.json path works like its folder."""
    text = compare([RUNS[0] / "results.json", RUNS[1]], ["before", "after"])
    assert "| before " in text and "| Δ after " in text


def test_speed_ratios_are_in_run() -> None:
    """A student's speed-up over the teacher is the ratio of their whole-set times in the same run."""
    rows = speed_rows(json.loads((RUNS[0] / "results.json").read_text()))
    assert rows[("sst2", "bilstm", "offline speed-up vs teacher")] == pytest.approx(400.0 / 4.0)
    assert rows[("sst2", "bilstm", "batch-1 speed-up vs teacher")] == pytest.approx(20.0 / 2.0)
    assert ("sst2", "bilstm_soft_noaug", "offline speed-up vs teacher") not in rows  # variants are not timed


def test_glue_averages_per_role() -> None:
    """Roles recorded (run_b) or inferred (run_a, older results) give the same rows; the score names the tasks."""
    for run in RUNS:
        rows = glue_rows(json.loads((run / "results.json").read_text()))
        assert list(rows) == [("GLUE", role, "average (1 task: sst2)") for role in ("teacher", "label-only", "distilled")]
    assert glue_rows(json.loads((RUNS[0] / "results.json").read_text()))[("GLUE", "distilled", "average (1 task: sst2)")] == 74.33


def test_runs_over_different_tasks_have_different_average_rows(tmp_path: Path) -> None:
    """A run with a second GLUE task averages two tasks (GLUE's way): its average rows are not shared."""
    results = json.loads((RUNS[1] / "results.json").read_text())
    results["tasks"]["mrpc"] = {"models": {
        "teacher": {"kind": "teacher", "role": "teacher", "scores": {"dev": {"accuracy": 80.0, "f1": 86.0}}},
        "siamese_bilstm_soft": {"kind": "student", "role": "distilled", "scores": {"dev": {"accuracy": 70.0, "f1": 81.0}}}}}
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert glue_rows(results) == {("GLUE", "teacher", "average (2 tasks: sst2, mrpc)"): pytest.approx((80.67 + 83.0) / 2),
                                  ("GLUE", "distilled", "average (2 tasks: sst2, mrpc)"): pytest.approx((75.0 + 75.5) / 2)}
    text = compare([RUNS[0], tmp_path], ["a", "b"])
    assert "| GLUE " not in text.split("Not in every run")[0]
    assert "- GLUE distilled average (1 task: sst2): only in a" in text
    assert "- GLUE distilled average (2 tasks: sst2, mrpc): only in b" in text
    assert "- mrpc teacher dev f1: only in b" in text


def test_several_models_of_one_role_get_their_own_average_rows(tmp_path: Path) -> None:
    """Two distilled students on one task: a GLUE row each, named by role and model, with its own average; a role
    with one model per task keeps its plain row name (the rows `harness check` baselines were made with)."""
    results = json.loads((RUNS[1] / "results.json").read_text())
    models = results["tasks"]["sst2"]["models"]
    models["alpha_soft"] = {"kind": "student", "role": "distilled", "scores": {"dev": {"accuracy": 60.0}}}
    models["beta_soft"] = {"kind": "student", "role": "distilled", "scores": {"dev": {"accuracy": 65.0}}}
    rows = glue_rows(results)
    score = "average (1 task: sst2)"
    assert list(rows) == [("GLUE", name, score) for name in ("teacher", "label-only", "distilled (bilstm_soft)",
                                                             "distilled (alpha_soft)", "distilled (beta_soft)")]
    assert (rows[("GLUE", "distilled (alpha_soft)", score)], rows[("GLUE", "distilled (beta_soft)", score)]) == (60.0, 65.0)
    (tmp_path / "results.json").write_text(json.dumps(results))
    text = compare([RUNS[1], tmp_path], ["one", "two"])
    shared = [line.split("|")[1:3] for line in text.split("Not in every run")[0].splitlines() if line.startswith("| GLUE")]
    assert [model.strip() for _, model in shared] == ["teacher", "label-only"]  # the distilled row is now named by model
    assert "- GLUE distilled (beta_soft) average (1 task: sst2): only in two" in text


def test_compare_needs_shared_rows(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text('{"tasks": {}}')
    with pytest.raises(HarnessError, match="share no"):
        compare([RUNS[0], tmp_path])
