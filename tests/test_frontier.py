"""The zoo's frontier (harness/results/frontier.py) on hand-made results: the Pareto points, the answers
(most accurate under 1 ms, fastest within 1 point of the best, fastest within noise of the best), retention, the
int8 point's own score, and the report's section and figure from results.json alone."""

from __future__ import annotations

import copy
from pathlib import Path

from harness.results import frontier


def timed(score: float, role: str, **latency_ms: float) -> dict:
    """A student scored `score` on dev, timed on each backend at the given batch-1 p50 (int8 one point lower)."""
    speed = [{"backend": b.replace("_", "-"), "device": "cpu", "dtype": "int8" if b == "onnx_int8" else "fp32",
              "interactive": {"p50_ms": ms},
              **({"scores": {"accuracy": score - 1.0}} if b == "onnx_int8" else {})}
             for b, ms in latency_ms.items()]
    return {"kind": "student", "role": role, "scores": {"dev": {"accuracy": score}}, "speed": speed,
            "params_non_embedding": 1000}


MODELS = {
    "teacher": {"kind": "teacher", "role": "teacher", "scores": {"dev": {"accuracy": 90.0}}},
    "bilstm_soft": timed(86.0, "distilled", torch=2.0, onnx=0.8, onnx_int8=0.5),
    "cnn_soft": timed(85.5, "distilled", torch=0.9, onnx=0.4),
    "bag_soft": timed(82.0, "distilled", torch=0.1),
    "bilstm": timed(83.0, "label-only", torch=2.0),  # beaten by cnn_soft on both: off the frontier
    # an ablation variant is timed as its base: not a point of its own
    "bilstm_soft_noaug": {**timed(99.0, "distilled", torch=0.01), "variant": {"base": "bilstm_soft", "changes": "x"}},
}


def test_pareto_points_and_the_two_answers() -> None:
    pts = frontier.points(MODELS)
    assert {(p.model, p.backend) for p in pts} >= {("bilstm_soft", "onnx-int8"), ("bag_soft", "torch")}
    assert all(p.model != "bilstm_soft_noaug" for p in pts)
    int8 = next(p for p in pts if p.backend == "onnx-int8")
    assert int8.score == 85.0  # its own measured score, not the fp32 one
    front = [(p.model, p.backend) for p in frontier.pareto(pts)]
    assert front == [("bag_soft", "torch"), ("cnn_soft", "onnx"), ("bilstm_soft", "onnx")]
    answers = frontier.choices(pts, teacher=90.0).to_dict("records")
    assert answers[0]["student"] == "`bilstm_soft` (onnx)" and answers[0]["retention of the teacher's score"] == "95.6%"
    assert answers[1]["student"] == "`cnn_soft` (onnx)"  # 85.5 is within 1 point of 86.0, and faster


def test_section_and_figure_from_results_alone(tmp_path: Path) -> None:
    """The section and frontier.png come from a results dict alone; a task with under 3 timed students gets neither."""
    results = {"tasks": {"sst2": {"models": dict(MODELS)}}}
    text = "\n".join(frontier.section(results))
    assert "## Which student? Dev score against batch-1 latency" in text and "### SST-2 (dev accuracy; teacher 90.00)" in text
    assert frontier.plot(results, tmp_path / "frontier.png") and (tmp_path / "frontier.png").stat().st_size > 0
    del results["tasks"]["sst2"]["models"]["cnn_soft"], results["tasks"]["sst2"]["models"]["bag_soft"]
    assert frontier.section(results) == [] and not frontier.plot(results, tmp_path / "none.png")


def vs(best: str, p: float) -> dict:
    """A `vs_best` paired test on dev accuracy (harness/scoring.py), significant below 0.05."""
    return {"against": best, "dev": {"accuracy": {"difference": -1.0, "p": p, "significant": p < 0.05, "test": "McNemar exact"}}}


def test_the_third_answer_asks_what_is_within_noise_of_the_best() -> None:
    """With each student tested against the most accurate one (`vs_best`), the fastest point within noise of it is
    a third answer, and the frontier table says where each point stands (these students trained on one seed, so each
    test is over the examples of one training run and says so). An int8 point counts only when its own test finds it
    no different from its fp32 outputs. Without the tests (results from before them), neither appears."""
    models = copy.deepcopy(MODELS)
    models["cnn_soft"]["vs_best"] = vs("bilstm_soft", 0.41)
    models["bag_soft"]["vs_best"] = vs("bilstm_soft", 0.003)
    models["bilstm"]["vs_best"] = vs("bilstm_soft", 0.02)
    int8 = next(s for s in models["bilstm_soft"]["speed"] if s["backend"] == "onnx-int8")
    int8["test"] = vs("torch fp32", 0.01)  # int8 changed the predictions: its standing is not known
    pts = frontier.points(models)
    standing = {(p.model, p.backend): p.vs_best for p in pts}
    one_run = "over the examples of one training run (not across seeds)"
    assert standing[("bilstm_soft", "onnx")] == "best" and standing[("cnn_soft", "onnx")] == f"within noise: p = 0.41 {one_run}"
    assert standing[("bag_soft", "torch")] == f"behind: p = 0.003 {one_run}"
    assert standing[("bilstm_soft", "onnx-int8")] == "untested: int8 differs from fp32 (p = 0.01)"
    answers = frontier.choices(pts, teacher=90.0).to_dict("records")
    assert answers[2]["question"] == ("fastest within noise of the most accurate student (`bilstm_soft`; paired test on "
                                      "the dev examples of one training run, not across seeds, p ≥ 0.05)")
    assert answers[2]["student"] == "`cnn_soft` (onnx)"  # 0.4 ms; the int8 bilstm_soft (0.5 ms) and the bag do not count
    int8["test"] = vs("torch fp32", 0.6)
    models["cnn_soft"]["vs_best"] = vs("bilstm_soft", 0.01)
    answers = frontier.choices(frontier.points(models), teacher=90.0).to_dict("records")
    assert answers[2]["student"] == "`bilstm_soft` (onnx-int8)"
    assert "against the most accurate student" in frontier.frontier_table(pts, 90.0).columns
    assert len(frontier.choices(frontier.points(MODELS), 90.0)) == 2
    assert "against the most accurate student" not in frontier.frontier_table(frontier.points(MODELS), 90.0).columns
