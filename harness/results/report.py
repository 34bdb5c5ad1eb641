"""results.json -> report.md (pandas + tabulate) and plot.png. A pure function of the results.

The paper's numbers sit in their own columns, labelled as reported (GLUE test sets, V100 GPU);
nothing in those columns was measured here.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from scipy.stats import spearmanr

from harness.core import metrics
from harness.results import frontier, significance
from harness.results.cells import fmt, md
from harness.results.glue_table import GLUE, glue_section, role_of
from harness.results.speed_tables import (
    backend_table,
    busy_timings,
    calibration_section,
    efficiency_table,
    int8_lines,
    speeds,
    thread_lines,
    timing,
    timing_memory_words,
)

# Tang et al. (2019), Table 1 (GLUE test) and section 4.4 (67,350 sentences, batch 512, one V100). The
# literature's figures are keyed by role (glue_table.role_of): each of the run's models is shown the
# paper's figure for its role on that task (its teacher BERT-large, its BiLSTM trained on gold labels
# only, its distilled BiLSTM_SOFT), labelled with the paper's model; none of them was measured here.
PAPER_ACCURACY = {
    "sst2": {"teacher": ("BERT-large", 94.9), "label-only": ("BiLSTM", 86.7), "distilled": ("BiLSTM_SOFT", 90.7)},
    "qqp": {"teacher": ("BERT-large, F1 / acc", "72.1 / 89.3"), "label-only": ("BiLSTM, F1 / acc", "63.7 / 86.2"),
            "distilled": ("BiLSTM_SOFT, F1 / acc", "68.2 / 88.1")},
    "mnli": {"teacher": ("BERT-large, m / mm", "86.7 / 85.9"), "label-only": ("BiLSTM, m / mm", "68.7 / 68.3"),
             "distilled": ("BiLSTM_SOFT, m / mm", "73.0 / 72.6")},
}
PAPER_EFFICIENCY = [
    ("BERT-large", 335_000_000, 1060.0),
    ("ELMo", 93_600_000, 36.71),
    ("BiLSTM_SOFT", 960_000, 2.44),
]
TASK_TITLES = {task: column.title for task, column in GLUE.items()}  # CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI
LOCAL_SPLIT_NOTE = ("Scores are on this harness's own seeded train/dev split of the Quora release (GLUE's split is not "
                    "available offline): they are not comparable with GLUE dev or test numbers.")
PAPER_COLUMN = "paper, GLUE test (reported, not measured)"


def accuracy_table(task: str, models: dict) -> pd.DataFrame:
    """Every non-variant model's scores on every split; the paper's figure for the model's role beside
    them where the paper (or the model's own `reported` entry) has one for this task, the column left
    out where none does."""
    paper = PAPER_ACCURACY.get(task, {})
    rows = []
    for name, m in models.items():
        if "variant" in m:  # in the ablation table
            continue
        row = {"model": name}
        for split, scores in m["scores"].items():
            for metric, value in scores.items():
                row[f"{split} {metric} (ours)"] = significance.decorate(fmt(value), m, split, metric, models)
        ref = paper.get(role_of(name, m)) or m.get("reported")
        row[PAPER_COLUMN] = f"{ref[1]} ({ref[0]})" if ref else "–"
        rows.append(row)
    table = pd.DataFrame(rows).fillna("–")
    if len(table) and (table[PAPER_COLUMN] == "–").all():
        table = table.drop(columns=PAPER_COLUMN)
    return table


def selection_line(data: dict) -> str:
    """Which split checkpoints and early stopping were chosen on, and so which columns are unbiased."""
    sel = data.get("selection")
    if sel:
        return (f"Checkpoints and early stopping (teacher and students) were chosen on the **selection split**: "
                f"{sel['examples']:,} training examples held out ({sel['rule']}; {sel['fraction']:.0%} of the training "
                f"file, at most {sel['limit']:,}), never trained on and not in the transfer set. Dev and test were scored "
                "once, after training, and chose nothing; the `selection` columns are the scores the choices were made "
                "on, so they are optimistic." + inside_line(sel.get("inside_train")))
    how = ("`selection.on=dev`, the paper's protocol" if data.get("select_on") == "dev"
           else "a run made before the selection split")
    return (f"Checkpoints and early stopping were chosen on **dev** ({how}): the dev columns are the scores the choices "
            "were made on, so they are optimistic.")


def watched_lines(stages: dict) -> list[str]:
    """Under `student.watch_dev`: each student's best dev score among its checks (on the task's first metric, the one
    checkpoints are chosen on), beside the kept checkpoint's, and how alike the selection split and dev rank the checks
    after the first epoch (Spearman; from 4 such checks), where the choice is among trained models."""
    lines, first = [], ""
    for name, stage in stages.items():
        curve = [h for h in stage.get("history") or [] if "dev" in h and "select" in h]  # runs before the selection
        # split chose on dev: their checks hold dev alone, and nothing was watched beside the choice
        if not curve:
            continue
        first = next(iter(curve[0]["dev"]))
        pick = max if metrics.metric(first).higher_is_better else min
        best = pick(curve, key=lambda h: h["dev"][first])
        line = f"- `{name}`: {best['dev'][first]:.2f} at epoch {best['epoch']:g}, the best of {len(curve)} checks"
        kept = next((h for h in curve if h["select"][first] == stage.get("best_select")), None)
        if kept:
            line += f"; the kept check (epoch {kept['epoch']:g}) {kept['dev'][first]:.2f}"
        later = [h for h in curve if h["epoch"] >= 1]
        if len(later) >= 4:
            rho = spearmanr([h["select"][first] for h in later], [h["dev"][first] for h in later]).statistic
            line += f"; selection and dev rank the {len(later)} checks from epoch 1 alike by Spearman {rho:.2f}"
        lines.append(line)
    if not lines:
        return []
    return [f"Dev {first} watched at every check (`student.watch_dev`; it chose nothing). The best of them is "
            "chosen on dev, so it is optimistic: it is how some published figures are made (PaddleNLP's distill_lstm prints "
            "dev every 10 steps), not a score of the kept checkpoint:", "", *lines, ""]


def inside_line(inside: dict | None) -> str:
    """How many selection and dev examples are phrases of a training example (SST-2's file holds its trees' phrases)."""
    if not inside or not inside["selection"]:
        return ""
    return (f" {inside['selection']:,} of the selection split's examples (and {inside['dev']:,} of dev's) appear word for "
            "word inside a training example, mostly phrases of its sentences: those score higher than unseen sentences.")


LABELS_ONLY = "gold labels only, original training set (no teacher, no augmentation)"
FULL_METHOD = "the full method: teacher logits on the augmented transfer set"
ROLE_CHANGES = {"label-only": LABELS_ONLY, "distilled": FULL_METHOD}  # a student's role -> what it is trained on


def dev_score(m: dict | None) -> tuple[str, float] | None:
    """A model's first dev metric and its value."""
    return frontier.first_dev((m or {}).get("scores", {}))


def ablation_table(models: dict) -> pd.DataFrame:
    """Each ablation variant's dev score and its gain over each of the run's own students (those with
    a role other than teacher, e.g. the label-only `bilstm` and the distilled `bilstm_soft` on SST-2),
    those students first, each described by its role."""
    variants = [n for n, m in models.items() if "variant" in m]
    if not variants:
        return pd.DataFrame()
    refs = {n: dev_score(m) for n, m in models.items() if role_of(n, m) in ROLE_CHANGES and dev_score(m)}
    rows = []
    for name in [*refs, *variants]:
        m, score = models[name], dev_score(models[name])
        row = {"model": name, "base": m["variant"]["base"] if name in variants else "–",
               "what it changes": m["variant"]["changes"] if name in variants else ROLE_CHANGES[role_of(name, m)],
               f"dev {score[0]}" if score else "dev": significance.decorate(fmt(score[1]), m, "dev", score[0], models)
               if score else "–"}
        for ref, (metric, value) in refs.items():
            row[f"vs {ref}"] = (f"{score[1] - value:+.2f}" + significance.gap_words(m, ref, "dev", metric, models)
                                if score and score[0] == metric and ref != name else "–")
        rows.append(row)
    return pd.DataFrame(rows).fillna("–")


def ablation_section(models: dict) -> list[str]:
    """The report's ablation subsection (nothing when the run has no variants)."""
    table = ablation_table(models)
    if not len(table):
        return []
    return ["### Ablations", "",
            "Each variant is its base student with the listed settings changed, trained on the same teacher, data and "
            "seed; scored on dev, not timed (same architecture as its base). `vs` columns: the row's dev score minus each "
            "of the run's own students' (label-only: gold labels only; distilled: the full method). Only a gap marked "
            "† (beyond noise, by a paired test over seeds), `within noise` or "
            f"`{significance.ONE_RUN_TAG}` (a test of models trained on one seed, over that run's dev examples: it claims "
            "no gain) was tested (\"Is it noise?\"); an unmarked gap is untested, not a gain.",
            "",
            md(table), ""]


def stage_table(stages: dict) -> pd.DataFrame:
    rows = [{"stage": name, "wall s": fmt(meta.get("seconds")), "peak memory GB": peak_words(meta),
             "reused from cache": "yes" if meta.get("cached") else "no", "key": meta.get("key", "")}
            for name, meta in stages.items()]
    return pd.DataFrame(rows)


def peak_words(meta: dict) -> str:
    """A stage's peak resident memory as recorded when it was computed (harness/core/memory.py); where the
    platform could not reset the peak per stage it is the run's peak so far, and says so."""
    if meta.get("peak_rss_gb") is None:
        return "–"
    return fmt(meta["peak_rss_gb"]) + (" (run so far)" if meta.get("peak_rss_scope") == "process" else "")


def teacher_words(cfg: dict, teacher: dict | None = None) -> str:
    """The teacher as configured: one checkpoint, an ensemble, or none (an imported transfer set)."""
    if cfg.get("transfer", {}).get("source"):
        return f"none in this run (students trained on the transfer set in `{cfg['transfer']['source']}`)"
    t = cfg["teacher"]
    size = f" ({teacher['params_total'] / 1e6:.1f}M parameters)" if teacher and teacher.get("params_total") else ""
    members = t.get("members") or []
    if members:
        return (f"an ensemble of {len(members)} fine-tuned teachers{size}, mean logits: "
                + ", ".join(f"`{m.get('checkpoint', t['checkpoint'])}` seed {m.get('seed', cfg.get('seed', '?'))}"
                            for m in members))
    return f"`{t['checkpoint']}`{size}, fine-tuned here"


def teacher_lines(t: dict) -> list[str]:
    """Each ensemble member's scores beside the ensemble's, or the imported transfer set's teacher."""
    imported = t["stages"].get("import")
    if imported:
        teacher = imported["teacher"]
        scores = "; ".join(f"{split} " + ", ".join(f"{m} {fmt(v)}" for m, v in s.items())
                           for split, s in teacher.get("scores", {}).items())
        return [f"The transfer set's teacher, `{teacher['checkpoint']}`, was fine-tuned and scored by the run that exported "
                f"it ({imported['exported_from']['run']}, commit {imported['exported_from']['commit']}): "
                f"{scores or 'no scores recorded'}. No teacher ran here."
                + (f" The transfer set was re-cut from `{imported['derived']['from']}` for this run's selection split "
                   f"(`scripts/tree_transfer.py`); its teacher was {imported['derived']['teacher']}, so its scores and labels "
                   "saw them." if "derived" in imported else ""), ""]
    members = (t["models"].get("teacher") or {}).get("members")
    if not members:
        return []
    def columns(scores: dict) -> dict:
        return {f"{split} {metric}": fmt(v) for split, s in scores.items() for metric, v in s.items()}

    rows = [{"teacher": f"member {k}: `{m['checkpoint']}` seed {m['seed']}", **columns(m["scores"])}
            for k, m in enumerate(members, 1)]
    rows.append({"teacher": "ensemble (mean logits)", **columns(t["models"]["teacher"]["scores"])})
    return ["The teacher ensemble and each of its members (members are fine-tuned and labelled on their own; the "
            "transfer set's logits are their mean):", "", md(pd.DataFrame(rows)), ""]


def task_seeds(results: dict, task: str) -> list:
    """The student seeds a task trained: its own (`per_task` may set them), else the run's."""
    t = results["tasks"][task]
    return t.get("seeds") or (t.get("config") or {}).get("seeds") or results["config"].get("seeds") or [results["seed"]]


def seeds_words(results: dict) -> str:
    """`Seed 13`, or `Seeds 13, 14, 15 (students; the teacher once)` for a run with several; where tasks trained
    different seeds (a suite's `per_task` seeds), each set with its tasks."""
    seeds = results["config"].get("seeds") or [results["seed"]]
    order = list(TASK_TITLES)
    by_task = {task: list(task_seeds(results, task)) for task in  # GLUE's order
               sorted(results["tasks"], key=lambda t: order.index(t) if t in order else len(order))}
    if len({tuple(s) for s in by_task.values()}) > 1:
        groups: dict[tuple, list[str]] = {}
        for task, task_list in by_task.items():
            groups.setdefault(tuple(task_list), []).append(TASK_TITLES.get(task, task))
        listed = "; ".join(f"{'seeds' if len(s) > 1 else 'seed'} {', '.join(map(str, s))} on {', '.join(tasks)}"
                           for s, tasks in groups.items())
        return f"Student seeds by task: {listed} ({teacher_seed_words(results)})"
    seeds = next(iter(by_task.values()), seeds)
    if len(seeds) == 1:
        return f"Seed {seeds[0]}"
    return f"Seeds {', '.join(map(str, seeds))} (students; {teacher_seed_words(results)})"


def teacher_seed_words(results: dict) -> str:
    per_seed = results["config"]["teacher"].get("per_seed")
    return "a teacher per seed" if per_seed else f"the teacher once, seed {results['seed']}"


STEPS = ("teacher", "import", "augment", "label")  # the stages before the students, in the pipeline's order
KIND_ORDER = {"teacher": 0, "student": 1, "reference": 2}


def pipeline_order(results: dict) -> dict:
    """`results` with each task's stages in the pipeline's order (teacher, augment, label, then the students) and its
    models teacher first, then the students, then the timing references; alphabetical within each. results.json is
    written with sorted keys, which would put the teacher after `bilstm_soft` and the labelling after the students."""
    def stage_key(name: str) -> tuple[int, str]:
        step = name.split(" ")[0]  # `teacher (member 1)`, `label (bilstm_soft_pos_only)`
        return (STEPS.index(step) if step in STEPS else len(STEPS), name)

    def model_key(item: tuple[str, dict]) -> tuple[int, str]:
        name, m = item
        return (0 if name == "teacher" else KIND_ORDER.get(m.get("kind"), 1), name)

    tasks = {task: {**t, "stages": dict(sorted(t["stages"].items(), key=lambda kv: stage_key(kv[0]))),
                    "models": dict(sorted(t["models"].items(), key=model_key))}
             for task, t in results["tasks"].items()}
    return {**results, "tasks": tasks}


def render(results: dict) -> str:
    results = pipeline_order(results)
    env = results["environment"]
    lines = [
        f"# Distillation report: suite `{results['suite']}`, preset `{results.get('preset') or 'none'}`",
        "",
        f"- Machine: {env['cpu']}, {env['usable_cores']} usable cores, {env['torch_threads']} torch threads, "
        f"GPU: {env['gpu'] or 'none'}",
        f"- Software: torch {env['packages']['torch']}, transformers {env['packages']['transformers']}; "
        f"commit {env['git_commit']}",
        f"- {seeds_words(results)}; whole run {fmt(results['wall_seconds'], 0)} s"
        + (f", peak resident memory {fmt(results['peak_rss_gb'])} GB" if results.get("peak_rss_gb") else ""),
        f"- Teacher: {teacher_words(results['config'])}; student embeddings: `{results['config']['student']['embedding']}`",
        "",
        *glue_section(results),
        *frontier.section(results),
    ]
    for task, t in results["tasks"].items():
        title = TASK_TITLES.get(task, task)
        rows = t["stages"].get("augment") or t["stages"]["import"]
        unit = t["data"].get("unit", "sentences")  # runs before the field was recorded: sentences
        scores = accuracy_table(task, t["models"])
        lines += [
            f"## {title}",
            "",
            f"Data: {t['data']['train']:,} training and {t['data']['dev']:,} dev examples from `{t['data']['source']}`; "
            f"transfer set {rows['rows']:,} rows ({rows['synthetic']:,} synthetic)"
            + (f", imported from `{rows['source']}`." if "source" in rows else "."),
            "",
            *([LOCAL_SPLIT_NOTE, ""] if "local seeded split" in t["data"]["source"] else []),
            "### Scores",
            "",
            ("The students trained on an imported transfer set" if "import" in t["stages"] else
             f"Our teacher is {teacher_words(t.get('config', results['config']), t['models'].get('teacher'))}, not BERT-large")
            + "; each of our columns is scored on the split it names"
            + ("; the paper's column is its test-set figure." if PAPER_COLUMN in scores else "."),
            "",
            *teacher_lines(t),
            selection_line(t["data"]),
            "",
            md(scores),
            "",
            *watched_lines(t["stages"]),
            *significance.mark_note(t["models"]),
            *ablation_section(t["models"]),
            *significance.section(t["models"]),
            f"### Size and speed (measured here in one process on {env['cpu']}, PyTorch fp32 on CPU, text in -> logits out)",
            "",
            md(efficiency_table(t["models"], unit=unit)),
            "",
            f"Every ratio above was measured on {env['cpu']}; in brackets, the range the timed passes give (one "
            "model's slowest pass against the other's fastest, both ways). A transformer's time over an LSTM's moves "
            "with the CPU's kind (the smoke students' offline speed-up over the teacher was 157x on an AMD EPYC, 60x on an "
            "Intel Xeon).",
            "",
            *calibration_section(t["models"], env["cpu"]),
            *(["On the GPU:", "", md(efficiency_table(t["models"], "cuda", unit)), ""] if any(
                s["device"] == "cuda" for m in t["models"].values() for s in speeds(m)) else []),
            *thread_lines(t["models"]),
            *[f"- {note}" for note in t.get("measure_notes", [])],
            "",
            "Reference models (`random weights`) are timed with random weights: speed does not depend on weight "
            "values; their accuracy is only ever the literature's, in the scores table's paper column.",
            "",
            "#### Every backend, device and dtype",
            "",
            md(backend_table(t["models"])),
            "",
            *int8_lines(t["models"]),
            "",
            "The paper's efficiency figures (reported, not measured; one V100 GPU, 67,350 sentences, batch 512):",
            "",
            md(pd.DataFrame([{"model": m, "params (reported)": f"{p:,}", "seconds (reported)": s}
                             for m, p, s in PAPER_EFFICIENCY])),
            "",
            "### Stage wall times and peak memory",
            "",
            md(stage_table(t["stages"])),
            "",
            "Peak memory is the most this process held resident while the stage ran (what earlier stages left in "
            "memory included), as recorded when the stage was computed: a stage reused from the cache shows its "
            "first run's figure." + timing_memory_words(t["models"]),
            "",
        ]
    busy = busy_timings(results)
    if busy:
        lines += ["## Warning: timings taken on a busy machine", "",
                  "Other processes used a noticeable share of the machine while these were timed; their latencies "
                  "and speed-ups are lower than a quiet machine gives:", "", *[f"- {b}" for b in busy], ""]
    lines += ["![dev score vs batch-1 latency](plot.png)", ""]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """Dev score (each model's first dev metric) against batch-1 p50 latency (log x), one point per
    (task, model); undefined (NaN) scores are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for task, t in results["tasks"].items():
        for name, m in t["models"].items():
            cpu = timing(m)
            reported = m.get("reported") or (None, None)
            y = next(iter(m["scores"]["dev"].values())) if "dev" in m["scores"] else reported[1]
            if cpu is None or not isinstance(y, (int, float)) or math.isnan(y):
                continue
            x = cpu["interactive"]["p50_ms"]
            measured = "dev" in m["scores"]
            ax.scatter(x, y, facecolors=None if measured else "none", edgecolors="C0" if measured else "C3")
            label = f"{task}/{name}" + ("" if measured else " (reported)")
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("batch-1 latency p50, ms (log scale)")
    ax.set_ylabel("dev score (hollow: literature, GLUE test)")
    ax.set_title("Dev score vs batch-1 latency, PyTorch fp32 on CPU")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(results: dict, out: Path) -> None:
    """report.md, plot.png and (for a run with several students per task) frontier.png, each written beside
    its place and renamed into it (nothing half-written)."""
    for name, write in (("report.md", lambda p: p.write_text(render(results))), ("plot.png", lambda p: plot(results, p)),
                        ("frontier.png", lambda p: frontier.plot(results, p))):
        tmp = out / f".{name}.tmp{Path(name).suffix}"  # matplotlib picks the format from the suffix
        try:
            if write(tmp) is not False:
                tmp.replace(out / name)
        finally:
            tmp.unlink(missing_ok=True)
