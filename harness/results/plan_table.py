"""`harness run --dry-run`: what a run would compute and what it would take from the cache, as a table."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from harness.results.cells import fmt


def note(step: dict) -> str:
    """What a step's state rests on: the time and memory a cached entry took, or why it is not reused as it is."""
    if step["state"] == "cached":
        seconds = step.get("seconds")
        took = f"took {fmt(seconds, 0 if seconds >= 10 else 1)} s" if seconds is not None else ""
        peak = f"{step['peak_rss_gb']:.2f} GB peak" if step.get("peak_rss_gb") is not None else ""
        return ", ".join(part for part in (took, peak) if part)
    return step.get("why", "")


def render(plan: dict[str, list[dict]], cache_dir: Path, out: Path) -> str:
    """The plan (api.plan) as markdown: one row per stage, in the order the run meets them, then a count."""
    rows = [{"task": task, "stage": step["name"], "state": step["state"], "key": step["key"], "notes": note(step)}
            for task, steps in plan.items() for step in steps]
    counts = Counter(row["state"] for row in rows)
    work = sum(counts[s] for s in ("to compute", "resumes", "damaged"))
    there = " (it exists: its results.json and report.md would be replaced)" if (out / "results.json").exists() else ""
    lines = [f"Dry run: nothing computed, nothing written. Stage cache: {cache_dir}. Output: {out}{there}.", "",
             pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True), "",
             f"{counts['cached']} of {len(rows)} stages would come from the cache and {work} would be computed"
             + (f" ({counts['resumes']} resuming a killed run's work)" if counts["resumes"] else "")
             + (f", {counts['damaged']} of them replacing a damaged entry" if counts["damaged"] else "")
             + (f"; {counts['same as above']} share an entry met above" if counts["same as above"] else "")
             + ". Scoring, timing and the report are not cached: a run always does them."]
    return "\n".join(lines)
