"""The report's size and speed tables: the paper's comparison (sizes, both regimes, speed-ups over BERT-large, ELMo
and the teacher, all timed in one run), every backend's timings, the calibrated speeds the CI gate reads, and the int8
models' accuracy beside fp32's. `compare` and `check` read timings through `speeds` and `timing`."""

from __future__ import annotations

import pandas as pd

from harness.results import stats
from harness.results.cells import fmt, md, ratio
from harness.speed.calibrate import calibrated_speed


def int8_lines(models: dict) -> list[str]:
    """One line per model timed as int8: its dev score against the PyTorch fp32 one (means over the seeds it was
    scored on) and, where the run tested them on the same examples and seeds, the paired test's p."""
    lines = []
    for name, m in models.items():
        int8 = timing(m, "onnx-int8", dtype="int8")
        if int8 and int8.get("scores") and m["scores"].get("dev"):
            metric, fp32 = next(iter(m["scores"]["dev"].items()))
            q = int8["scores"][metric]
            test = ((int8.get("test") or {}).get("dev") or {}).get(metric)
            seeds = int8.get("seeds_scored", 1)  # results from before every seed was scored: the timed one
            head = f"- `{name}` dynamic int8 (ONNX Runtime{f', {seeds} seeds' if seeds > 1 else ''}): dev {metric} {q:.2f}"
            if test and test.get("difference") is not None:
                verdict = "more than noise" if test["significant"] else "within noise"
                lines.append(f"{head} vs fp32 {q - test['difference']:.2f} "
                             f"({test['difference']:+.2f}; {test['test']}, p {stats.p_text(test['p'])}: {verdict})")
            else:
                lines.append(f"{head} vs fp32 {fp32:.2f} ({q - fp32:+.2f})")
    return lines


def speeds(m: dict) -> list[dict]:
    """A model's timings; results from before backends existed hold one torch/cpu timing inline."""
    if "speed" in m:
        return m["speed"]
    legacy = {"backend": "torch", "device": "cpu", "dtype": "fp32"}
    return [{**legacy, "interactive": m["interactive"], "offline": m["offline"]}] if "interactive" in m else []


def timing(m: dict | None, backend: str = "torch", device: str = "cpu", dtype: str = "fp32") -> dict | None:
    return next((s for s in speeds(m or {}) if (s["backend"], s["device"], s["dtype"]) == (backend, device, dtype)), None)


def whole_set(off: dict) -> str:
    return fmt(off["whole_set_s"]) + (f" (projected from {off['projected_from']:,})" if off["projected_from"] else "")


def pass_times(off: dict) -> list[float]:
    """An offline timing's whole-set seconds as each timed pass gives them (empty for runs that kept none)."""
    return [p * off["whole_set"] / off["items"] for p in off.get("pass_s", [])] if off.get("items") else []


def speedup(slow: dict | None, fast: dict) -> str:
    """`slow`'s offline whole-set time over `fast`'s, e.g. `157.1x`, with the range the timed passes give
    (the slowest pass of one against the fastest of the other, both ways): `157.1x [140-171]`."""
    text = ratio(slow and slow["whole_set_s"], fast["whole_set_s"])
    a, b = pass_times(slow or {}), pass_times(fast)
    if text == "–" or not (a and b):
        return text
    low, high = min(a) / max(b), max(a) / min(b)
    return f"{text} [{ratio(low, 1).rstrip('x')}-{ratio(high, 1)}]"


def efficiency_table(models: dict, device: str = "cpu", unit: str = "sentences") -> pd.DataFrame:
    """The paper's comparison, PyTorch fp32 on `device`: sizes, both regimes, and speed-ups of each
    model over BERT-large, ELMo and our teacher (all timed in this run, on this machine). `unit`
    names what the offline regime's examples are (pairs on pair tasks)."""
    refs = {r: timing(models.get(r), device=device) for r in ("bert_large", "elmo", "teacher")}
    bert_params = models.get("bert_large", {}).get("params_total")
    rows = []
    for name, m in models.items():
        t = timing(m, device=device)
        if t is None:
            continue
        row = {
            "model": name + (" (random weights)" if m.get("kind") == "reference" else ""),
            "params (total)": f"{m['params_total']:,}",
            "params (excl. embeddings)": f"{m['params_non_embedding']:,}",
            "BERT-large params / these (excl. emb.)": ratio(bert_params, m["params_non_embedding"], 0),
            "batch-1 p50 ms": fmt(t["interactive"]["p50_ms"]),
            "batch-1 p99 ms": fmt(t["interactive"]["p99_ms"]),
            f"{t['offline']['whole_set']:,} {unit}, batch {t['offline']['batch_size']}, s": whole_set(t["offline"]),
        }
        for ref, label in (("bert_large", "BERT-large"), ("elmo", "ELMo"), ("teacher", "teacher")):
            other = refs[ref]
            row[f"offline speed-up vs {label}"] = speedup(other and other["offline"], t["offline"])
        rows.append(row)
    return pd.DataFrame(rows)


def busy_timings(results: dict) -> list[str]:
    """Each (task, model, backend, regime) whose timing ran while other processes took more than
    measure.BUSY_SHARE of the machine, with that share."""
    return [f"{task} {model} {s['backend']}/{s['device']} {regime}: other processes used "
            f"{s[regime]['conditions']['others_share']:.0%} of the machine (load {s[regime]['conditions']['load_1m'][-1]:g})"
            for task, t in results["tasks"].items() for model, m in t["models"].items() for s in speeds(m)
            for regime in ("interactive", "offline") if s[regime].get("conditions", {}).get("busy")]


def calibration_table(models: dict) -> pd.DataFrame:
    """PyTorch-on-CPU timings in units of each model's calibration workload (harness/speed/calibrate.py,
    the CI gate's speed rows), with how much of the machine other processes used meanwhile."""
    rows = []
    for name, m in models.items():
        t = timing(m)
        if t is None or not t["offline"].get("calibration"):
            continue
        row = {"model": name, "workload": t["offline"]["calibration"]["workload"]}
        for regime, label in (("interactive", "batch-1"), ("offline", "offline")):
            cal, cond = t[regime]["calibration"], t[regime].get("conditions", {})
            row[f"{label}: workload ms/call"] = f"{fmt(cal['ms_before'])} / {fmt(cal['ms_after'])}"
            row[f"{label}: speed (workload units)"] = fmt(calibrated_speed(t[regime], regime), 3)
            row[f"{label}: others' share"] = f"{cond['others_share']:.0%}" if "others_share" in cond else "–"
        rows.append(row)
    return pd.DataFrame(rows)


def calibration_section(models: dict, cpu: str) -> list[str]:
    """The calibrated speeds (the CI gate's speed rows), when the run has them."""
    table = calibration_table(models)
    if table.empty:
        return []
    return [f"Speeds in calibration units on {cpu}, the rows `harness check` gates: each model's time against a fixed "
            "workload of its kind timed just before / after it with the same threads (harness/speed/calibrate.py), so that "
            "the CPU's speed and, to first order, its shape cancel; and the share of the machine other processes used "
            "while it was timed:", "", md(table), ""]


def thread_lines(models: dict) -> list[str]:
    """Which intra-op thread counts the two regimes ran with (recorded per timing)."""
    counts = {regime: sorted({s[regime]["threads"] for m in models.values() for s in speeds(m) if "threads" in s[regime]})
              for regime in ("interactive", "offline")}
    if not any(counts.values()):
        return []
    return [f"- Threads: batch 1 ran with {', '.join(map(str, counts['interactive']))} intra-op thread(s) (one request "
            f"per core), the offline regime with {', '.join(map(str, counts['offline']))}."]


def backend_table(models: dict) -> pd.DataFrame:
    """Every (model, backend, device, dtype) timing with its spread, and dev scores of non-PyTorch
    variants (int8 accuracy sits beside fp32's)."""
    rows = []
    for name, m in models.items():
        for t in speeds(m):
            inter, off = t["interactive"], t["offline"]
            dev = t.get("scores") or (m["scores"].get("dev") if t["backend"] == "torch" else None)
            rows.append({
                "model": name, "backend": t["backend"], "device": t["device"], "dtype": t["dtype"],
                "batch-1 p50 / p90 / p99 ms": f"{fmt(inter['p50_ms'])} / {fmt(inter['p90_ms'])} / {fmt(inter['p99_ms'])}",
                "batch-1 mean ± sd ms": f"{fmt(inter['mean_ms'])} ± {fmt(inter['stdev_ms'])}",
                "p50 per pass ms": " / ".join(fmt(p) for p in inter.get("pass_p50_ms", [])) or "–",
                f"batch-{off['batch_size']} sentences/s": fmt(off["sentences_per_s"], 0),
                "whole set, s": whole_set(off),
                "dev score": fmt(next(iter(dev.values()))) if dev else "–",
            })
    return pd.DataFrame(rows)


def timing_memory_words(models: dict) -> str:
    """The peak resident memory while each model was exported, timed and scored: its largest backend's."""
    peaks = {name: max((e["peak_rss_gb"], e["backend"]) for e in m["speed"] if e.get("peak_rss_gb") is not None)
             for name, m in models.items() if any(e.get("peak_rss_gb") is not None for e in m.get("speed", []))}
    if not peaks:
        return ""
    return " Timing each model (its exports, timed passes and backend scores) peaked at " + \
        ", ".join(f"{name} {fmt(gb)} GB ({backend})" for name, (gb, backend) in peaks.items()) + "."

