"""Which student should I deploy? The accuracy-latency frontier of a run's students, per task, from
results.json alone (so `harness report` re-renders it).

A point is a (student, CPU backend) pair the run timed: its dev score on that backend (PyTorch fp32 and
ONNX fp32 share the model's own score, an int8 export has the score it was measured at) against its
batch-1 p50 latency. A point is on the frontier when no point is both at least as fast and more accurate.
Students are the run's label-only and distilled models (ablation variants are timed as their bases).

- `section`: the report's tables per task: the most accurate student under 1 ms batch-1, the fastest within
  1 point of the best student, each one's retention of the teacher's score, and the frontier.
- `plot`: one small panel per task (score against latency, log scale), the frontier drawn as a step line.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from harness.results import significance
from harness.results.glue_table import GLUE, role_of
from harness.results.stats import ONE_RUN, p_text

BUDGET_MS = 1.0  # "under 1 ms batch-1"
WITHIN_POINTS = 1.0  # "within 1 point of the best student"
MIN_STUDENTS = 3  # a task gets a frontier when it has at least this many timed students


class Point(NamedTuple):
    model: str
    backend: str  # torch, onnx, onnx-int8
    score: float
    latency_ms: float
    params: int  # excluding embeddings
    # "best", "within noise (p = ...)", "behind (p = ...)" (a test over seeds; of one training run: "within noise: p = ...
    # over the examples of one training run (not across seeds)"), or why untested; None: no tests
    vs_best: str | None = None


def first_dev(scores: dict) -> tuple[str, float] | None:
    dev = scores.get("dev") or {}
    return next(iter(dev.items()), None)


def points(models: dict) -> list[Point]:
    """Every timed (student, CPU backend) of one task with a defined dev score."""
    out = []
    best = next((m["vs_best"]["against"] for m in models.values() if "vs_best" in m), None)
    for name, m in models.items():
        if "variant" in m or role_of(name, m) not in ("label-only", "distilled"):
            continue
        own = first_dev(m.get("scores", {}))
        for s in m.get("speed", []):
            if s["device"] != "cpu":
                continue
            score = next(iter((s.get("scores") or {}).values()), None) if s["backend"] == "onnx-int8" else None
            score = own[1] if score is None and own else score
            if score is None or math.isnan(score):
                continue
            out.append(Point(name, s["backend"], score, s["interactive"]["p50_ms"], m.get("params_non_embedding", 0),
                             against_best(name, m, s, best, own[0], models) if best and own else None))
    return out


def against_best(name: str, model: dict, speed: dict, best: str, metric: str, models: dict | None = None) -> str:
    """Where a point stands against the run's most accurate student, by the paired test on dev (`vs_best`,
    harness/scoring.py) of the student's PyTorch predictions: an int8 point only when its own test against
    them finds no difference. A test of students trained on one seed (significance.pair_covers_seeds; `models`: the
    task's) says so: `behind: p = 0.006 over the examples of one training run (not across seeds)`."""
    int8 = (speed.get("test") or {}).get("dev", {}).get(metric, {}) if speed["backend"] == "onnx-int8" else {}
    if int8.get("significant", False):
        return f"untested: int8 differs from fp32 (p {p_text(int8['p'])})"
    if name == best:
        return "best"
    test = model.get("vs_best", {}).get("dev", {}).get(metric)
    if test is None:
        return "untested"
    word = "behind" if test["significant"] else "within noise"
    if not significance.pair_covers_seeds(model, models, best):
        return f"{word}: p {p_text(test['p'])} {ONE_RUN}"
    return f"{word} (p {p_text(test['p'])})"


def tied(p: Point) -> bool:
    """Whether a point is the best student's or within noise of it."""
    return p.vs_best is not None and (p.vs_best == "best" or p.vs_best.startswith("within noise"))


def pareto(pts: list[Point]) -> list[Point]:
    """The points no other point beats on both latency and score, fastest first."""
    front, best = [], -math.inf
    for p in sorted(pts, key=lambda p: (p.latency_ms, -p.score)):
        if p.score > best:
            front.append(p)
            best = p.score
    return front


def metric_name(models: dict) -> str:
    return next((first_dev(m.get("scores", {}))[0] for m in models.values() if first_dev(m.get("scores", {}))), "score")


def frontier_tasks(results: dict) -> dict[str, list[Point]]:
    """task -> its points, for the tasks with at least MIN_STUDENTS timed students."""
    found = {}
    order = list(GLUE)
    for task in sorted(results["tasks"], key=lambda t: order.index(t) if t in order else len(order)):  # GLUE's order
        pts = points(results["tasks"][task]["models"])
        if len({p.model for p in pts}) >= MIN_STUDENTS:
            found[task] = pts
    return found


def retention(score: float, teacher: float | None) -> str:
    return f"{100 * score / teacher:.1f}%" if teacher else "–"


def choices(pts: list[Point], teacher: float | None) -> pd.DataFrame:
    """The two answers: the most accurate under BUDGET_MS, the fastest within WITHIN_POINTS of the best."""
    best = max(p.score for p in pts)
    rows = []
    under = [p for p in pts if p.latency_ms < BUDGET_MS]
    close = [p for p in pts if p.score >= best - WITHIN_POINTS]
    questions = [(f"most accurate under {BUDGET_MS:g} ms batch-1",
                  max(under, key=lambda p: (p.score, -p.latency_ms)) if under else None),
                 (f"fastest within {WITHIN_POINTS:g} point of the best student ({best:.2f})",
                  min(close, key=lambda p: (p.latency_ms, -p.score)))]
    ties = [p for p in pts if tied(p)]
    if ties:  # the run tested every student against its most accurate one
        leader = next((f"`{p.model}`; " for p in pts if p.vs_best == "best"), "")
        one_run = any(ONE_RUN in (p.vs_best or "") for p in pts)
        test = "paired test on the dev examples of one training run, not across seeds" if one_run else "paired test on dev"
        questions.append((f"fastest within noise of the most accurate student ({leader}{test}, p ≥ 0.05)",
                          min(ties, key=lambda p: (p.latency_ms, -p.score))))
    for question, pick in questions:
        rows.append({"question": question, "student": "none" if pick is None else f"`{pick.model}` ({pick.backend})",
                     "dev score": "–" if pick is None else f"{pick.score:.2f}",
                     "batch-1 p50 ms": "–" if pick is None else f"{pick.latency_ms:.3f}",
                     "params (excl. emb.)": "–" if pick is None else f"{pick.params:,}",
                     "retention of the teacher's score": "–" if pick is None else retention(pick.score, teacher)})
    return pd.DataFrame(rows)


def frontier_table(pts: list[Point], teacher: float | None) -> pd.DataFrame:
    return pd.DataFrame([{"student": f"`{p.model}`", "backend": p.backend, "dev score": f"{p.score:.2f}",
                          "batch-1 p50 ms": f"{p.latency_ms:.3f}", "params (excl. emb.)": f"{p.params:,}",
                          "retention": retention(p.score, teacher),
                          **({"against the most accurate student": p.vs_best} if p.vs_best is not None else {})}
                         for p in pareto(pts)])


def section(results: dict) -> list[str]:
    """The report's "Which student?" section; nothing when no task has MIN_STUDENTS timed students."""
    found = frontier_tasks(results)
    if not found:
        return []
    lines = ["## Which student? Dev score against batch-1 latency", "",
             "Each point is a student on one CPU backend of this run (PyTorch fp32, ONNX Runtime fp32, dynamic int8; "
             "an int8 point has its own measured dev score), at batch-1 p50 latency on this machine. The frontier holds "
             "the points no other point beats on both. Retention: the student's dev score over the teacher's.", "",
             "![accuracy-latency frontier per task](frontier.png)", ""]
    for task, pts in found.items():
        models = results["tasks"][task]["models"]
        teacher = (first_dev(models.get("teacher", {}).get("scores", {})) or (None, None))[1]
        title = GLUE[task].title if task in GLUE else task
        lines += [f"### {title} (dev {metric_name(models)}; teacher {teacher:.2f})" if teacher else f"### {title}", "",
                  choices(pts, teacher).to_markdown(index=False, disable_numparse=True), "",
                  "The frontier, fastest first:", "",
                  frontier_table(pts, teacher).to_markdown(index=False, disable_numparse=True), ""]
    return lines


def plot(results: dict, path: Path) -> bool:
    """frontier.png: one panel per task with a frontier; False (nothing written) when there is none."""
    found = frontier_tasks(results)
    if not found:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    n = len(found)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    markers = {"torch": "o", "onnx": "s", "onnx-int8": "^"}
    for ax, (task, pts) in zip(axes.flat, found.items()):
        families = sorted({p.model for p in pts})
        colour = {m: f"C{i % 10}" for i, m in enumerate(families)}
        for p in pts:
            ax.scatter(p.latency_ms, p.score, marker=markers.get(p.backend, "o"), color=colour[p.model], s=22)
        front = pareto(pts)
        ax.step([p.latency_ms for p in front], [p.score for p in front], where="post", color="k", lw=1, alpha=0.7)
        for p in front:
            ax.annotate(p.model, (p.latency_ms, p.score), textcoords="offset points", xytext=(3, 3), fontsize=6)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(GLUE[task].title if task in GLUE else task, fontsize=9)
        ax.set_xlabel("batch-1 p50 ms (log)", fontsize=8)
        ax.set_ylabel(f"dev {metric_name(results['tasks'][task]['models'])}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles = [plt.Line2D([], [], marker=m, ls="", color="grey", label=b) for b, m in markers.items()]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7, title="backend (colour: student)",
               title_fontsize=7)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
