"""The zoo's frontier (harness/results/frontier.py) on hand-made results: the Pareto points, the two answers
(most accurate under 1 ms, fastest within 1 point of the best), retention, the int8 point's own score, and
the report's section and figure from results.json alone."""

from __future__ import annotations

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
