"""The GLUE table: GLUE's cell conventions, its macro average, roles (recorded or inferred), a row per
model family (several models of one role), the tasks not run, the literature's rows kept apart from ours,
and the report's GLUE section; the report and compare name no registered student."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from golden_files import PINNED, RETAKE, refuse_retake_switches

from harness.results.glue_table import LITERATURE, REPORTED, glue_section, glue_table, literature_table, not_run_lines, role_of
from harness.results.report import PAPER_COLUMN, ablation_table, accuracy_table, fmt, pipeline_order, plot, render

REPORTS = Path(__file__).resolve().parent.parent / "reports"


def model(role: str | None = None, kind: str = "student", **dev: float) -> dict:
    """A results entry scored on dev (`dev_mismatched=` goes to its own split)."""
    mm = dev.pop("dev_mismatched", None)
    scores = {"dev": dev, **({"dev_mismatched": {"accuracy": mm}} if mm is not None else {})}
    return {"kind": kind, "scores": scores, **({"role": role} if role else {})}


def run(**tasks: dict) -> dict:
    """A results dict with these tasks, each {name: model}."""
    return {"tasks": {task: {"models": models} for task, models in tasks.items()}}


# Hand-made: every cell convention, two roles, a variant and a reference to be ignored, tasks in non-GLUE order.
RESULTS = run(
    mnli={"teacher": model("teacher", "teacher", accuracy=80.0, dev_mismatched=81.0),
          "siamese_bilstm_soft": model("distilled", accuracy=70.0, dev_mismatched=71.0)},
    qqp={"teacher": model("teacher", "teacher", accuracy=90.0, f1=80.0),
         "siamese_bilstm_soft": model("distilled", accuracy=86.0, f1=75.0),
         "bert_large": {"kind": "reference", "scores": {}}},
    cola={"teacher": model("teacher", "teacher", mcc=40.0), "bilstm_soft": model("distilled", mcc=20.0),
          "bilstm_soft_noaug": {"kind": "student", "variant": {"base": "bilstm_soft"}, "scores": {"dev": {"mcc": 99.0}}}},
    mrpc={"teacher": model("teacher", "teacher", accuracy=80.0, f1=86.0),
          "siamese_bilstm_soft": model("distilled", accuracy=70.0, f1=81.0)},
    stsb={"teacher": model("teacher", "teacher", pearson=85.0, spearman=84.0),
          "siamese_bilstm_soft": model("distilled", pearson=60.0, spearman=58.5)},
)


def rows(df) -> dict[str, dict[str, str]]:
    """Table rows by their first cell."""
    return {r[df.columns[0]]: r for r in df.to_dict("records")}


def test_cells_follow_glue_conventions_in_glue_order() -> None:
    table = glue_table(RESULTS)
    assert list(table.columns) == ["measured here (dev)", "CoLA MCC", "MRPC F1/acc", "STS-B Pearson/Spearman",
                                   "QQP acc/F1", "MNLI-m/mm acc", "average (5 tasks)"]
    teacher = rows(table)["teacher"]
    assert teacher["MRPC F1/acc"] == "86.00 / 80.00"  # F1 first
    assert teacher["STS-B Pearson/Spearman"] == "85.00 / 84.00"
    assert teacher["QQP acc/F1"] == "90.00 / 80.00"  # accuracy first
    assert teacher["MNLI-m/mm acc"] == "80.00 / 81.00"  # matched / mismatched
    assert teacher["CoLA MCC"] == "40.00"


def test_average_is_glues_macro_average() -> None:
    """Two-number tasks contribute their mean, then the mean over tasks (variants are not the distilled student)."""
    distilled = rows(glue_table(RESULTS))["distilled student (bilstm_soft / siamese_bilstm_soft)"]
    # CoLA 20; MRPC (81+70)/2 = 75.5; STS-B (60+58.5)/2 = 59.25; QQP (86+75)/2 = 80.5; MNLI (70+71)/2 = 70.5
    assert distilled["average (5 tasks)"] == "61.15"  # (20 + 75.5 + 59.25 + 80.5 + 70.5) / 5 = 305.75 / 5
    assert distilled["CoLA MCC"] == "20.00"
    assert rows(glue_table(RESULTS))["teacher"]["average (5 tasks)"] == "74.60"  # (40 + 83 + 84.5 + 85 + 80.5) / 5


def test_role_missing_a_task_gets_no_average_and_one_task_says_task() -> None:
    table = glue_table(run(sst2={"teacher": model(kind="teacher", accuracy=90.0)}, rte={"bilstm": model(accuracy=55.0)}))
    assert list(table.columns)[-1] == "average (2 tasks)"
    by_row = rows(table)
    assert by_row["teacher"]["RTE acc"] == "–" and by_row["teacher"]["average (2 tasks)"] == "–"
    assert list(glue_table(run(sst2={"teacher": model(kind="teacher", accuracy=90.0)})).columns)[-1] == "average (1 task)"


def test_nan_correlation_renders_nan() -> None:
    table = glue_table(run(stsb={"siamese_bilstm": model(pearson=math.nan, spearman=math.nan)}))
    assert rows(table)["label-only student (siamese_bilstm)"]["STS-B Pearson/Spearman"] == "nan / nan"
    assert rows(table)["label-only student (siamese_bilstm)"]["average (1 task)"] == "nan"
    assert fmt(math.nan) == "nan" and fmt(None) == "–" and fmt(1234.5) == "1,234.50"


@pytest.mark.parametrize(("name", "entry", "role"), [
    ("teacher", {"kind": "teacher"}, "teacher"),
    ("teacher", {}, "teacher"),  # the oldest results record no kind
    ("bilstm", {"kind": "student"}, "label-only"),
    ("siamese_bilstm", {}, "label-only"),
    ("bilstm_soft", {"kind": "student"}, "distilled"),
    ("siamese_bilstm_soft", {}, "distilled"),
    ("bilstm_soft_noaug", {"kind": "student", "variant": {"base": "bilstm_soft"}}, None),
    ("elmo", {"kind": "reference"}, None),
    ("my_student", {"kind": "student", "role": "distilled"}, "distilled"),  # recorded roles win
])
def test_role_inferred_for_old_results(name: str, entry: dict, role: str | None) -> None:
    assert role_of(name, entry) == role


def test_old_results_without_roles_get_rows() -> None:
    old = run(sst2={"teacher": {"scores": {"dev": {"accuracy": 90.0}}}, "bilstm": {"scores": {"dev": {"accuracy": 83.0}}},
                    "bilstm_soft": {"scores": {"dev": {"accuracy": 88.0}}}})
    assert list(rows(glue_table(old))) == ["teacher", "label-only student (bilstm)", "distilled student (bilstm_soft)"]


# Two distilled architectures on SST-2 and CoLA; only beta_soft ran on RTE (it keeps its own row there).
TWO_DISTILLED = run(
    sst2={"teacher": model("teacher", "teacher", accuracy=90.0), "alpha_soft": model("distilled", accuracy=80.0),
          "beta_soft": model("distilled", accuracy=70.0), "plain": model("label-only", accuracy=75.0)},
    cola={"teacher": model("teacher", "teacher", mcc=40.0), "alpha_soft": model("distilled", mcc=30.0),
          "beta_soft": model("distilled", mcc=10.0), "plain": model("label-only", mcc=15.0)},
)


def test_several_models_of_one_role_get_a_row_each() -> None:
    """A second distilled student on a task gets its own named row with its own average, after the label-only one."""
    table = rows(glue_table(TWO_DISTILLED))
    assert list(table) == ["teacher", "label-only student (plain)", "distilled student (alpha_soft)",
                           "distilled student (beta_soft)"]
    assert table["distilled student (alpha_soft)"]["average (2 tasks)"] == "55.00"  # (30 + 80) / 2
    assert table["distilled student (beta_soft)"]["average (2 tasks)"] == "40.00"  # (10 + 70) / 2
    assert table["distilled student (beta_soft)"]["SST-2 acc"] == "70.00"


def test_a_model_keeps_its_row_across_tasks() -> None:
    """A model joins the row that already holds its name, even where it is its role's only (first) model on a task."""
    results = run(**{t: v["models"] for t, v in TWO_DISTILLED["tasks"].items()},
                  rte={"beta_soft": model("distilled", accuracy=60.0)})
    table = rows(glue_table(results))
    assert table["distilled student (beta_soft)"]["RTE acc"] == "60.00"
    assert table["distilled student (beta_soft)"]["average (3 tasks)"] == "46.67"  # (10 + 70 + 60) / 3
    assert table["distilled student (alpha_soft)"]["RTE acc"] == "–"
    assert table["distilled student (alpha_soft)"]["average (3 tasks)"] == "–"


def test_report_describes_students_by_role() -> None:
    """The paper's figure follows the model's role, and the ablation table says what a student is by its role."""
    sst2 = TWO_DISTILLED["tasks"]["sst2"]["models"]
    papers = {r["model"]: r[PAPER_COLUMN] for r in accuracy_table("sst2", sst2).to_dict("records")}
    assert papers == {"teacher": "94.9 (BERT-large)", "alpha_soft": "90.7 (BiLSTM_SOFT)", "beta_soft": "90.7 (BiLSTM_SOFT)",
                      "plain": "86.7 (BiLSTM)"}
    variant = {**model(accuracy=72.0), "variant": {"base": "alpha_soft", "changes": "no augmentation"}}
    table = ablation_table({**sst2, "alpha_soft_noaug": variant})
    changes = dict(zip(table["model"], table["what it changes"]))
    assert changes["plain"].startswith("gold labels only") and changes["alpha_soft"].startswith("the full method")
    assert changes["alpha_soft_noaug"] == "no augmentation"
    assert table.iloc[-1]["vs beta_soft"] == "+2.00"


def test_not_run_lines() -> None:
    results = {**RESULTS, "not_run": {"mnli": "no training data; looked in --data-dir: /x, default: ../shared/data/MNLI",
                                      "wnli": "no training data"}}
    assert not_run_lines(results) == ["- mnli: not run, no training data; looked in --data-dir: /x, default: ../shared/data/MNLI",
                                      "- wnli: not run, no training data"]
    assert not_run_lines(RESULTS) == []


def test_literature_only_for_tasks_run_and_labelled() -> None:
    table = literature_table(run(sst2={"bilstm": model(accuracy=80.0)}, qqp={"siamese_bilstm": model(accuracy=80.0, f1=70.0)}))
    assert table.columns[0] == REPORTED == "reported, not measured (GLUE test server)"
    assert list(table.columns)[1:] == ["SST-2 acc", "QQP acc/F1", "average (2 tasks), computed here from the reported figures"]
    by_row = rows(table)
    soft = by_row["BiLSTM_SOFT, distilled from BERT-large (Tang et al. 2019, Table 1)"]
    assert soft["SST-2 acc"] == "90.7" and soft["QQP acc/F1"] == "88.1 / 68.2"  # Tang print F1/acc 68.2/88.1
    assert float(soft[table.columns[-1]]) == pytest.approx((90.7 + (88.1 + 68.2) / 2) / 2, abs=0.006)  # 84.425
    glue_bilstm = by_row["BiLSTM, single-task (Wang et al. 2019, GLUE Table 4)"]
    assert glue_bilstm["QQP acc/F1"] == "81.7 / 61.4"


def test_literature_rows_without_every_task_have_no_average() -> None:
    table = literature_table(run(cola={"bilstm": model(mcc=10.0)}, sst2={"bilstm": model(accuracy=80.0)}))
    by_row = rows(table)
    assert by_row["BiLSTM_SOFT, distilled from BERT-large (Tang et al. 2019, Table 1)"]["CoLA MCC"] == "–"
    assert by_row["BiLSTM_SOFT, distilled from BERT-large (Tang et al. 2019, Table 1)"][table.columns[-1]] == "–"
    assert by_row["BERT-base (Devlin et al. 2019, Table 1; GLUE leaderboard)"][table.columns[-1]] == "72.80"  # (52.1+93.5)/2
    # A row reporting none of the run's tasks is left out.
    assert list(rows(literature_table(run(rte={"siamese_bilstm": model(accuracy=55.0)})))) == [
        name for name, reported in LITERATURE.items() if "rte" in reported]


def test_literature_average_over_all_nine_tasks_matches_the_glue_paper() -> None:
    """Computed GLUE's way from Table 4's rounded figures: the paper prints 63.9 and 66.4."""
    every = run(**{task: {"bilstm": model(accuracy=1.0)} for task in ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli",
                                                                      "qnli", "rte", "wnli")})
    by_row = rows(literature_table(every))
    average = "average (9 tasks), computed here from the reported figures"
    assert by_row["BiLSTM, single-task (Wang et al. 2019, GLUE Table 4)"][average] == "64.01"
    assert by_row["BiLSTM + ELMo, single-task (Wang et al. 2019, GLUE Table 4)"][average] == "66.43"


def test_section_keeps_measured_and_reported_apart() -> None:
    results = {**RESULTS, "not_run": {"wnli": "no training data"}}
    text = "\n".join(glue_section(results))
    measured, literature = text.split("The literature, for orientation")
    assert "| measured here (dev)" in measured and "Tang et al." not in measured
    assert "| reported, not measured (GLUE test server)" in literature and "siamese_bilstm_soft" not in literature
    assert "dev set" in measured and "GLUE's test sets" in literature
    assert text.rstrip().endswith("- wnli: not run, no training data")
    assert glue_section(run(custom={"bilstm": model(accuracy=1.0)})) == []


def full_results() -> dict:
    """A results dict `render` accepts: CoLA (MCC, with a timed model) and STS-B (a NaN correlation)."""
    timing = {"backend": "torch", "device": "cpu", "dtype": "fp32",
              "interactive": {"p50_ms": 2.0, "p90_ms": 2.5, "p99_ms": 3.0, "mean_ms": 2.1, "stdev_ms": 0.1},
              "offline": {"batch_size": 512, "whole_set": 100, "whole_set_s": 1.0, "sentences_per_s": 100.0,
                          "projected_from": None}}

    def task(models: dict) -> dict:
        return {"data": {"train": 100, "dev": 50, "source": "local files"}, "stages": {"augment": {"rows": 10, "synthetic": 5}},
                "models": models}
    cola = {"teacher": {**model(kind="teacher", mcc=-12.5), "params_total": 10, "params_non_embedding": 5, "speed": [timing]},
            "bilstm_soft": {**model(mcc=30.0), "params_total": 4, "params_non_embedding": 2, "speed": [timing]}}
    stsb = {"siamese_bilstm": {**model(pearson=math.nan, spearman=math.nan), "params_total": 4, "params_non_embedding": 2,
                               "speed": [timing]}}
    return {"suite": "glue", "preset": "smoke", "seed": 1, "wall_seconds": 1.0, "tasks": {"cola": task(cola), "stsb": task(stsb)},
            "not_run": {"mnli": "no training data"},
            "environment": {"cpu": "cpu", "usable_cores": 2, "torch_threads": 2, "gpu": None, "git_commit": "abc",
                            "packages": {"torch": "2", "transformers": "4"}},
            "config": {"teacher": {"checkpoint": "minilm"}, "student": {"embedding": "teacher"}}}


def test_report_has_the_glue_section_before_the_tasks_and_plots_mcc_and_nan(tmp_path: Path) -> None:
    results = full_results()
    text = render(results)
    assert text.index("## GLUE") < text.index("## CoLA") < text.index("## STS-B")
    assert "- mnli: not run, no training data" in text and "### Scores" in text and "### Accuracy" not in text
    scores = accuracy_table("stsb", results["tasks"]["stsb"]["models"])
    assert scores.to_dict("records") == [{"model": "siamese_bilstm", "dev pearson (ours)": "nan", "dev spearman (ours)": "nan"}]
    plot(results, tmp_path / "plot.png")  # a negative MCC plots; the NaN correlation is left out
    assert (tmp_path / "plot.png").stat().st_size > 0


def test_tables_follow_the_pipeline_not_the_sorted_keys_of_results_json() -> None:
    """results.json is written with sorted keys; the report still lists the teacher first and the timing references
    last, and the stages in the order they ran."""
    results = full_results()
    cola = results["tasks"]["cola"]
    cola["models"]["bert_large"] = {**model(kind="reference"), "params_total": 3, "params_non_embedding": 3}
    cola["stages"] = {name: {"seconds": 1.0, "key": name} for name in
                      ("augment", "bilstm_soft", "label", "label (member 1)", "teacher", "teacher (member 1)")}
    cola["stages"]["augment"].update(rows=10, synthetic=5)
    cola["models"] = dict(sorted(cola["models"].items()))
    ordered = pipeline_order(results)["tasks"]["cola"]
    assert list(ordered["models"]) == ["teacher", "bilstm_soft", "bert_large"]
    assert list(ordered["stages"]) == ["teacher", "teacher (member 1)", "augment", "label", "label (member 1)",
                                       "bilstm_soft"]
    text = render(results)
    assert text.index("| teacher ") < text.index("| bilstm_soft ")
    stage_rows = text[text.index("### Stage wall times"):]
    assert stage_rows.index("| teacher ") < stage_rows.index("| augment ") < stage_rows.index("| label ") < \
        stage_rows.index("| bilstm_soft ")


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPORTS)) for p in REPORTS.rglob("*results.json")))
def test_every_committed_results_json_renders(path: str) -> None:
    """`harness report` re-renders any committed run, old ones included (runs before the selection split kept dev
    alone in their training curves)."""
    from harness.results.report import TASK_TITLES

    results = json.loads((REPORTS / path).read_text())
    text = render(results)
    assert text.startswith("# Distillation report: suite `glue`")

    def shown(value: float, sd: float | None) -> str:
        """A score as the report writes it: two decimals, thousands separators, `nan` when undefined; ` ± sd` over seeds."""
        return ("nan" if math.isnan(value) else f"{value:,.2f}") + ("" if sd is None else f" ± {sd:.2f}")

    def table(section: str, subsection: str) -> dict[str, dict[str, str]]:
        """The first markdown table of `section`'s `### subsection` whose first column is `model`: {model: {column: cell}}."""
        part = section.split(f"\n### {subsection}\n", 1)[1].split("\n### ", 1)[0]
        lines = [line for line in part.splitlines() if line.startswith("|")]
        start = next(i for i, line in enumerate(lines) if line.split("|")[1].strip() == "model")
        header = [cell.strip() for cell in lines[start].strip("|").split("|")]
        rows = {}
        for line in lines[start + 2:]:
            if line.split("|")[1].strip() == "model":  # the next table
                break
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            assert len(cells) == len(header), line
            rows[cells[0]] = dict(zip(header, cells))
        return rows

    sections = {chunk.split("\n", 1)[0]: chunk for chunk in text.split("\n## ")[1:]}
    for task, t in results["tasks"].items():
        section = sections[TASK_TITLES.get(task, task)]
        scores = table(section, "Scores")
        variants = {name: m for name, m in t["models"].items() if "variant" in m}
        assert set(scores) == set(t["models"]) - set(variants), (task, sorted(scores))
        for name, m in t["models"].items():
            spread = m.get("spread") or {}
            cells = [(f"{split} {metric} (ours)", value, split, metric)
                     for split, split_scores in m["scores"].items() for metric, value in split_scores.items()]
            if name in variants:  # its first dev score, in the ablation table
                metric, value = next(iter(m["scores"]["dev"].items()))
                row, cells = table(section, "Ablations")[name], [(f"dev {metric}", value, "dev", metric)]
            else:
                row = scores[name]
            for column, value, split, metric in cells:
                sd = ((spread.get(split) or {}).get(metric) or {}).get("sd")
                want, cell = shown(value, sd), row[column]
                # †: a significant paired test. A column of plain numbers is reformatted by tabulate (84.40 as 84.4).
                assert cell in (want, want + "†") or (sd is None and float(cell) == float(want.replace(",", ""))), \
                    (task, name, column, cell, want)


# The reports rendered by the current code pin its rendering on real runs (tests/golden_files.py's PINNED). To accept a
# deliberate change to the rendering: `.venv/bin/python tests/retake_golden.py reports`, then review `git diff reports/`.
@pytest.mark.parametrize("folder", PINNED)
def test_pinned_reports_are_what_the_renderer_writes(folder: str) -> None:
    """Each pinned report.md is exactly `render` of the results.json beside it (never written here)."""
    refuse_retake_switches()
    text = render(json.loads((REPORTS / folder / "results.json").read_text()))
    assert text == (REPORTS / folder / "report.md").read_text(), \
        f"reports/{folder}/report.md is not what the renderer writes: if the change is deliberate, run `{RETAKE} reports`"


def seeded(role: str, task_scores: dict[str, dict[str, float]], significant: bool | None = None) -> dict:
    """A results entry with several seeds: {seed: dev scores}, their mean and spread, and a paired test on
    dev accuracy (significant or not) when `significant` is given."""
    import numpy as np

    seeds = {s: {"dev": scores} for s, scores in task_scores.items()}
    metrics = next(iter(task_scores.values()))
    spread = {"dev": {m: {"mean": float(np.mean([v[m] for v in task_scores.values()])),
                          "sd": float(np.std([v[m] for v in task_scores.values()], ddof=1)), "seeds": len(seeds)}
                      for m in metrics}}
    entry = {"kind": "student", "role": role, "seeds": seeds, "spread": spread,
             "scores": {"dev": {m: v["mean"] for m, v in spread["dev"].items()}}}
    if significant is not None:
        entry["test"] = {"against": "bilstm", "dev": {m: {"difference": 1.0, "p": 0.01 if significant else 0.4,
                                                          "test": "t", "significant": significant} for m in metrics}}
    return entry


def test_tables_show_mean_sd_and_mark_significant_gaps() -> None:
    """Several seeds: each cell is mean ± sd, † only where the paired test is significant, the GLUE average
    has the sd of the per-seed averages, and the ablation table calls a non-significant gap within noise."""
    soft = seeded("distilled", {"13": {"accuracy": 86.0}, "14": {"accuracy": 85.0}}, significant=True)
    plain = seeded("label-only", {"13": {"accuracy": 82.0}, "14": {"accuracy": 84.0}})
    noaug = seeded("distilled", {"13": {"accuracy": 85.5}, "14": {"accuracy": 85.9}}, significant=False)
    noaug.update(variant={"base": "bilstm_soft", "changes": "no augmentation"}, role=None)
    noaug["test"]["against"] = "bilstm_soft"
    cola_soft = seeded("distilled", {"13": {"mcc": 20.0}, "14": {"mcc": 30.0}}, significant=False)
    cola_plain = seeded("label-only", {"13": {"mcc": 10.0}, "14": {"mcc": 12.0}})
    results = run(sst2={"bilstm": plain, "bilstm_soft": soft, "bilstm_soft_noaug": noaug},
                  cola={"bilstm": cola_plain, "bilstm_soft": cola_soft})
    table = rows(glue_table(results))
    distilled = table["distilled student (bilstm_soft)"]
    assert distilled["SST-2 acc"] == "85.50 ± 0.71†"
    assert distilled["CoLA MCC"] == "25.00 ± 7.07"  # tested, within noise: no mark
    assert table["label-only student (bilstm)"]["SST-2 acc"] == "83.00 ± 1.41"  # untested: no mark
    # per-seed averages: (86 + 20) / 2 = 53 and (85 + 30) / 2 = 57.5 -> mean 55.25, sd 3.18
    assert distilled["average (2 tasks)"] == "55.25 ± 3.18"
    ablation = rows(ablation_table(results["tasks"]["sst2"]["models"]))
    assert ablation["bilstm_soft_noaug"]["vs bilstm_soft"] == "+0.20 (within noise)"
    assert ablation["bilstm_soft"]["vs bilstm"] == "+2.50 †"
    assert ablation["bilstm_soft_noaug"]["vs bilstm"] == "+2.70"  # not its tested pair: a bare difference
    assert rows(accuracy_table("sst2", results["tasks"]["sst2"]["models"]))["bilstm_soft"]["dev accuracy (ours)"] == \
        "85.50 ± 0.71†"


def test_speedups_carry_the_range_of_their_passes() -> None:
    """An offline speed-up shows the range its timed passes give: one model's slowest against the other's fastest."""
    from harness.results.speed_tables import speedup

    slow = {"whole_set_s": 2.5, "whole_set": 10, "items": 10, "pass_s": [2.0, 3.0]}
    fast = {"whole_set_s": 1.25, "whole_set": 10, "items": 10, "pass_s": [1.0, 1.5]}
    assert speedup(slow, fast) == "2.0x [1.3-3.0x]"
    assert speedup({"whole_set_s": 2.5}, {"whole_set_s": 1.25}) == "2.0x"  # runs that kept no passes: the bare ratio
    assert speedup(None, fast) == "–"
