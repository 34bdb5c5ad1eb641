"""results.json -> report.md (pandas + tabulate) and plot.png. A pure function of the results.

The paper's numbers sit in their own columns, labelled as reported (GLUE test sets, V100 GPU);
nothing in those columns was measured here.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

# Tang et al. (2019), Table 1 (GLUE test) and section 4.4 (67,350 sentences, batch 512, one V100).
PAPER_ACCURACY = {"sst2": {"teacher": ("BERT-large", 94.9), "bilstm": ("BiLSTM", 86.7), "bilstm_soft": ("BiLSTM_SOFT", 90.7)}}
PAPER_EFFICIENCY = [
    ("BERT-large", 335_000_000, 1060.0),
    ("ELMo", 93_600_000, 36.71),
    ("BiLSTM_SOFT", 960_000, 2.44),
]
TASK_TITLES = {"sst2": "SST-2"}


def fmt(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def accuracy_table(task: str, models: dict) -> pd.DataFrame:
    paper = PAPER_ACCURACY.get(task, {})
    rows = []
    for name, m in models.items():
        row = {"model": name}
        for split, scores in m["scores"].items():
            for metric, value in scores.items():
                row[f"{split} {metric} (ours)"] = fmt(value)
        ref = paper.get(name)
        row["paper, GLUE test (reported, not measured)"] = f"{ref[1]} ({ref[0]})" if ref else "–"
        rows.append(row)
    return pd.DataFrame(rows)


def efficiency_table(models: dict) -> pd.DataFrame:
    teacher = models.get("teacher", {})
    rows = []
    for name, m in models.items():
        if "interactive" not in m:
            continue
        off, inter = m["offline"], m["interactive"]
        whole = fmt(off["whole_set_s"]) + (f" (projected from {off['projected_from']:,})" if off["projected_from"] else "")
        speedup = teacher["offline"]["whole_set_s"] / off["whole_set_s"] if "offline" in teacher else None
        rows.append({
            "model": name,
            "params (total)": f"{m['params_total']:,}",
            "params (excl. embeddings)": f"{m['params_non_embedding']:,}",
            "batch-1 p50 ms": fmt(inter["p50_ms"]),
            "batch-1 p90 ms": fmt(inter["p90_ms"]),
            "batch-1 p99 ms": fmt(inter["p99_ms"]),
            f"batch-{off['batch_size']} sentences/s": fmt(off["sentences_per_s"], 0),
            f"{off['whole_set']:,} sentences, s": whole,
            "offline speed-up vs teacher": fmt(speedup, 1) + "x" if speedup else "–",
        })
    return pd.DataFrame(rows)


def stage_table(stages: dict) -> pd.DataFrame:
    rows = [{"stage": name, "wall s": fmt(meta.get("seconds")), "reused from cache": "yes" if meta.get("cached") else "no",
             "key": meta.get("key", "")} for name, meta in stages.items()]
    return pd.DataFrame(rows)


def md(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False) if len(df) else "_(nothing measured)_"


def render(results: dict) -> str:
    env = results["environment"]
    lines = [
        f"# Distillation report: suite `{results['suite']}`, preset `{results.get('preset') or 'none'}`",
        "",
        f"- Machine: {env['cpu']}, {env['usable_cores']} usable cores, {env['torch_threads']} torch threads, "
        f"GPU: {env['gpu'] or 'none'}",
        f"- Software: torch {env['packages']['torch']}, transformers {env['packages']['transformers']}; "
        f"commit {env['git_commit']}",
        f"- Seed {results['seed']}; whole run {fmt(results['wall_seconds'], 0)} s",
        f"- Teacher: `{results['config']['teacher']['checkpoint']}` fine-tuned here; student embeddings: "
        f"`{results['config']['student']['embedding']}`",
        "",
    ]
    for task, t in results["tasks"].items():
        title = TASK_TITLES.get(task, task)
        lines += [
            f"## {title}",
            "",
            f"Data: {t['data']['train']:,} training and {t['data']['dev']:,} dev examples from `{t['data']['source']}`; "
            f"transfer set {t['stages']['augment']['rows']:,} rows ({t['stages']['augment']['synthetic']:,} synthetic).",
            "",
            "### Accuracy",
            "",
            "Our teacher is MiniLM-L6 (22.7M parameters), not BERT-large; the paper's column is its test-set figure, "
            "ours are dev-set scores.",
            "",
            md(accuracy_table(task, t["models"])),
            "",
            "### Size and speed (measured here, CPU, text in -> logits out)",
            "",
            md(efficiency_table(t["models"])),
            "",
            "The paper's efficiency figures (reported, not measured; one V100 GPU, 67,350 sentences, batch 512):",
            "",
            md(pd.DataFrame([{"model": m, "params (reported)": f"{p:,}", "seconds (reported)": s}
                             for m, p, s in PAPER_EFFICIENCY])),
            "",
            "### Stage wall times",
            "",
            md(stage_table(t["stages"])),
            "",
        ]
    lines += ["![dev accuracy vs batch-1 latency](plot.png)", ""]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """Dev accuracy against batch-1 p50 latency (log x), one point per (task, model)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6, 4))
    for task, t in results["tasks"].items():
        for name, m in t["models"].items():
            if "interactive" in m and "dev" in m["scores"]:
                x, y = m["interactive"]["p50_ms"], next(iter(m["scores"]["dev"].values()))
                ax.scatter(x, y)
                ax.annotate(f"{task}/{name}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("batch-1 latency p50, ms (log scale)")
    ax.set_ylabel("dev score")
    ax.set_title("Accuracy vs latency (measured on this machine)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(results: dict, out: Path) -> None:
    tmp = out / ".report.md.tmp"
    tmp.write_text(render(results))
    tmp.replace(out / "report.md")
    plot(results, out / "plot.png")
