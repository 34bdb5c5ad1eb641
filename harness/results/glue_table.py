"""The GLUE table: a pure function of results.json, in GLUE's own conventions.

One row per model family of each role the run recorded (teacher first, then label-only students,
then distilled students), one column per GLUE task run, in GLUE's order, each cell as GLUE reports
the task: CoLA MCC; SST-2, QNLI, RTE, WNLI accuracy; MRPC F1 / acc; STS-B Pearson / Spearman; QQP
acc / F1; MNLI matched / mismatched accuracy. The last column is GLUE's macro average: a task with two
numbers contributes their mean, then the mean over the tasks, for rows scored on every task run. Our
numbers are dev-set scores; the literature's (GLUE test server) sit in their own table and never share
a cell or an average with them.

Families: a role's models are read task by task (GLUE's order), each task's in the order results list
them. A model joins the family that already holds its name; otherwise the first family with no model
on that task yet; otherwise it starts a new family. So when every task has one model of a role (the
common case), the role is one row that pools them and names them all: a single-sentence student on
single-sentence tasks and a pair student on pair tasks (e.g. `bilstm / siamese_bilstm`). A second
model of the role on a task (a second distilled architecture) gets a row of its own, named, with its
own average.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import pandas as pd

from harness.results import significance, stats


class Column(NamedTuple):
    """How GLUE reports one task.

    Attributes:
        title: the task's name as GLUE writes it.
        header: the table's column header, naming the cell's numbers in order.
        cells: (split, metric) of each number of the cell, in that order.
    """

    title: str
    header: str
    cells: tuple[tuple[str, str], ...]


GLUE: dict[str, Column] = {  # GLUE's task order
    "cola": Column("CoLA", "CoLA MCC", (("dev", "mcc"),)),
    "sst2": Column("SST-2", "SST-2 acc", (("dev", "accuracy"),)),
    "mrpc": Column("MRPC", "MRPC F1/acc", (("dev", "f1"), ("dev", "accuracy"))),
    "stsb": Column("STS-B", "STS-B Pearson/Spearman", (("dev", "pearson"), ("dev", "spearman"))),
    "qqp": Column("QQP", "QQP acc/F1", (("dev", "accuracy"), ("dev", "f1"))),
    "mnli": Column("MNLI", "MNLI-m/mm acc", (("dev", "accuracy"), ("dev_mismatched", "accuracy"))),
    "qnli": Column("QNLI", "QNLI acc", (("dev", "accuracy"),)),
    "rte": Column("RTE", "RTE acc", (("dev", "accuracy"),)),
    "wnli": Column("WNLI", "WNLI acc", (("dev", "accuracy"),)),
}
ROLES = {"teacher": "teacher", "label-only": "label-only student", "distilled": "distilled student"}
REPORTED = "reported, not measured (GLUE test server)"

# The literature, GLUE test-server scores, each cell in the order of GLUE[task].cells (x100). Sources,
# each figure checked against a stored copy:
# - Wang et al., "GLUE", ICLR 2019 version (arXiv 1804.07461v3), Table 4, "Single-Task Training" rows
#   BiLSTM and +ELMo; checked against two stored copies of the paper (an English markdown conversion and
#   a Chinese translation), which agree. The paper prints MRPC and QQP as acc/F1, STS-B as
#   Pearson/Spearman; MRPC is reordered to F1/acc below. Its WNLI 65.1 is the most-frequent-class score,
#   which the authors substituted for every model's predictions.
# - BERT-base: Devlin et al. 2019, Table 1 (GLUE test server): MNLI 84.6/83.4, QQP F1 71.2, QNLI 90.5,
#   SST-2 93.5, CoLA 52.1, STS-B Spearman 85.8, MRPC F1 88.9, RTE 66.4; checked against stored text of the
#   paper. Table 1 gives one number for QQP, MRPC and STS-B and no WNLI; the second numbers (QQP acc 89.2,
#   MRPC acc 84.8, STS-B Pearson 87.1) and WNLI 65.1 are the same submission's GLUE leaderboard entry, as
#   copied in the ERNIE 2.0 README's GLUE test table and in a second public table, which agree.
# - BiLSTM_SOFT: Tang et al. 2019 (arXiv 1903.12136), Table 1 (GLUE test), as in PAPER.md: SST-2 90.7
#   (checked against its paperswithcode entry); QQP F1/acc 68.2/88.1 and MNLI 73.0/72.6 checked only
#   against a stored secondary summary of that table (no stored copy of the paper itself was found).
LITERATURE: dict[str, dict[str, tuple[float, ...]]] = {
    "BiLSTM, single-task (Wang et al. 2019, GLUE Table 4)": {
        "cola": (15.7,), "sst2": (85.9,), "mrpc": (79.4, 69.3), "stsb": (66.0, 62.8), "qqp": (81.7, 61.4),
        "mnli": (70.3, 70.8), "qnli": (75.7,), "rte": (52.8,), "wnli": (65.1,),
    },
    "BiLSTM + ELMo, single-task (Wang et al. 2019, GLUE Table 4)": {
        "cola": (35.0,), "sst2": (90.2,), "mrpc": (80.8, 69.0), "stsb": (64.0, 60.2), "qqp": (85.7, 65.6),
        "mnli": (72.9, 73.4), "qnli": (71.7,), "rte": (50.1,), "wnli": (65.1,),
    },
    "BERT-base (Devlin et al. 2019, Table 1; GLUE leaderboard)": {
        "cola": (52.1,), "sst2": (93.5,), "mrpc": (88.9, 84.8), "stsb": (87.1, 85.8), "qqp": (89.2, 71.2),
        "mnli": (84.6, 83.4), "qnli": (90.5,), "rte": (66.4,), "wnli": (65.1,),
    },
    "BiLSTM_SOFT, distilled from BERT-large (Tang et al. 2019, Table 1)": {
        "sst2": (90.7,), "qqp": (88.1, 68.2), "mnli": (73.0, 72.6),
    },
}

Cell = tuple[float | None, ...]


def role_of(name: str, model: dict) -> str | None:
    """A model's role in the run: "teacher", "label-only" or "distilled"; None for ablation variants
    and references. Results written before roles were recorded get it inferred from name and kind.

    Args:
        name: the model's name in results.
        model: its results entry.
    """
    if "role" in model:
        return model["role"]
    kind = model.get("kind", "teacher" if name == "teacher" else "student")  # the oldest results record no kind
    if "variant" in model or kind not in ("teacher", "student"):
        return None
    if kind == "teacher" or name == "teacher":
        return "teacher"
    return "distilled" if name.endswith("_soft") else "label-only"


def glue_tasks(results: dict) -> list[str]:
    """The GLUE tasks the run scored, in GLUE's order."""
    return [task for task in GLUE if task in results.get("tasks", {})]


def role_models(results: dict) -> dict[str, list[dict[str, tuple[str, dict]]]]:
    """role -> its families (module docstring), each {task: (name, model)}, over the run's GLUE tasks."""
    found: dict[str, list[dict[str, tuple[str, dict]]]] = {role: [] for role in ROLES}
    for task in glue_tasks(results):
        for name, model in results["tasks"][task]["models"].items():
            families = found.get(role_of(name, model))
            if families is None:
                continue
            family = (next((f for f in families if any(n == name for n, _ in f.values())), None)
                      or next((f for f in families if task not in f), None))
            if family is None:
                family = {}
                families.append(family)
            family[task] = (name, model)
    return found


class Family(NamedTuple):
    """One measured row: models of one role, at most one per task.

    Attributes:
        role: "teacher", "label-only" or "distilled".
        names: its models' names, in task order, each once.
        models: task -> (name, model).
        average: GLUE's macro average over every GLUE task of the run; None unless scored on all of them.
        alone: whether it is its role's only family.
    """

    role: str
    names: tuple[str, ...]
    models: dict[str, tuple[str, dict]]
    average: float | None
    alone: bool

    @property
    def label(self) -> str:
        """The table's first cell: the role, with its models' names unless the only one is named as the role."""
        return ROLES[self.role] + ("" if self.names == (self.role,) else f" ({' / '.join(self.names)})")

    @property
    def key(self) -> str:
        """Its name in `harness compare`: the role alone when the role has one family (rows as before
        several models could share a role), else the role and its models' names."""
        return self.role if self.alone else f"{self.role} ({' / '.join(self.names)})"


def cell(task: str, model: dict) -> Cell:
    """A model's numbers for `task` in GLUE's order (None where a metric is missing)."""
    scores = model.get("scores", {})
    return tuple(scores.get(split, {}).get(metric) for split, metric in GLUE[task].cells)


def glue_score(cells: Sequence[Cell]) -> float | None:
    """GLUE's macro average: each task's numbers averaged, then the tasks. None when a number is missing
    (NaN, e.g. an undefined correlation, stays NaN)."""
    if not cells or any(v is None for c in cells for v in c):
        return None
    return sum(sum(c) / len(c) for c in cells) / len(cells)  # type: ignore[arg-type]


def tasks_phrase(n: int) -> str:
    """`6 tasks`, `1 task`."""
    return f"{n} task{'' if n == 1 else 's'}"


def fmt_cell(values: Cell, digits: int) -> str:
    """A cell's numbers joined as `F1 / acc` (NaN as `nan`, missing as `–`)."""
    return " / ".join("–" if v is None else f"{v:.{digits}f}" for v in values)


def measured_cell(task: str, model: dict, models: dict | None = None) -> str:
    """A model's cell in the measured table: its numbers, each with ± sd over seeds and † when its paired
    test is significant and covers seeds (harness/results/significance.py; `models`: the task's, for the seeds
    of the model it is tested against)."""
    return " / ".join("–" if v is None else significance.decorate(f"{v:.2f}", model, split, metric, models)
                      for v, (split, metric) in zip(cell(task, model), GLUE[task].cells))


def average_sd(family: Family, tasks: list[str]) -> float | None:
    """The sd over seeds of a family's GLUE average: the average of each seed's scores, when every model
    of the family has the same several seeds; else None."""
    seeds = {tuple(model.get("seeds", {})) for _, model in family.models.values()}
    if family.average is None or len(seeds) != 1 or len(next(iter(seeds))) < 2:
        return None
    per_seed = [glue_score([cell(task, {"scores": family.models[task][1]["seeds"][s]}) for task in tasks])
                for s in next(iter(seeds))]
    return None if any(v is None for v in per_seed) else stats.spread(per_seed)["sd"]


def families(results: dict) -> list[Family]:
    """The measured table's rows, in order: each role's families, each with its GLUE average."""
    tasks = glue_tasks(results)
    rows = []
    for role, found in role_models(results).items():
        for models in found:
            scored = bool(tasks) and set(models) == set(tasks)
            average = glue_score([cell(task, models[task][1]) for task in tasks]) if scored else None
            names = tuple(dict.fromkeys(name for name, _ in models.values()))
            rows.append(Family(role, names, models, average, len(found) == 1))
    return rows


def glue_table(results: dict) -> pd.DataFrame:
    """The measured table: a row per family (its models named), a column per GLUE task run, the average."""
    tasks = glue_tasks(results)
    rows = []
    for family in families(results):
        row = {"measured here (dev)": family.label}
        for task in tasks:
            row[GLUE[task].header] = (measured_cell(task, family.models[task][1], results["tasks"][task]["models"])
                                      if task in family.models else "–")
        sd = average_sd(family, tasks)
        row[f"average ({tasks_phrase(len(tasks))})"] = ("–" if family.average is None else f"{family.average:.2f}"
                                                        + ("" if sd is None else f" ± {sd:.2f}"))
        rows.append(row)
    return pd.DataFrame(rows)


def literature_table(results: dict) -> pd.DataFrame:
    """The literature's rows for the GLUE tasks this run has (rows reporting none of them left out); the
    average only for rows reporting every one of them, computed here from their reported figures."""
    tasks = glue_tasks(results)
    rows = []
    for source, reported in LITERATURE.items():
        if not any(task in reported for task in tasks):
            continue
        row = {REPORTED: source}
        for task in tasks:
            row[GLUE[task].header] = fmt_cell(reported[task], 1) if task in reported else "–"
        score = glue_score([reported[task] for task in tasks]) if all(task in reported for task in tasks) else None
        row[f"average ({tasks_phrase(len(tasks))}), computed here from the reported figures"] = (
            "–" if score is None else f"{score:.2f}")
        rows.append(row)
    return pd.DataFrame(rows)


def not_run_lines(results: dict) -> list[str]:
    """One markdown line per task the run skipped, with the reason it recorded."""
    return [f"- {task}: not run, {reason}" for task, reason in (results.get("not_run") or {}).items()]


def glue_section(results: dict) -> list[str]:
    """The report's GLUE section: measured table, literature table, what each is scored on, the tasks
    not run. Nothing when the run has no GLUE task and skipped none."""
    tasks, skipped = glue_tasks(results), not_run_lines(results)
    if not tasks and not skipped:
        return []
    lines = ["## GLUE", ""]
    if tasks:
        local = [GLUE[t].title for t in tasks if "local seeded split" in results["tasks"][t].get("data", {}).get("source", "")]
        where = f" ({', '.join(local)}: this harness's own seeded split, not GLUE's dev set)" if local else ""
        lines += [
            f"Our scores are on each task's dev set{where}"
            + ("; MNLI-m/mm is dev matched / dev mismatched" if "mnli" in tasks else "")
            + ". Cells follow GLUE's conventions, in the order the header names; the average is GLUE's macro average "
            f"(a task with two numbers contributes their mean) over the {tasks_phrase(len(tasks))} run.",
            "",
            glue_table(results).to_markdown(index=False, disable_numparse=True),
            "",
            *significance.mark_note(*(results["tasks"][t]["models"] for t in tasks)),
        ]
        literature = literature_table(results)
        if len(literature):
            lines += [
                "The literature, for orientation: reported, not measured here, on GLUE's test sets (scored by the "
                "GLUE server), not on our dev sets; different examples, so no row above and below is a like-for-like "
                "comparison." + (" GLUE's own baselines' WNLI is the most-frequent-class score, which the GLUE authors "
                                 "substituted for their models' predictions." if "wnli" in tasks else ""),
                "",
                literature.to_markdown(index=False, disable_numparse=True),
                "",
            ]
    if skipped:
        lines += [*skipped, ""]
    return lines
