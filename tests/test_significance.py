"""What a paired test may claim (issue 45): a gap is significant (`†`, "significant", "beyond noise", `real`) only
by a test over seeds, both models trained on at least two; a test of models trained on one seed is over the examples
of one training run, and every table, section and `compare` says so and claims no gain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.data.tasks import Split
from harness.results import compare, frontier, samples, significance, stats
from harness.results.glue_table import glue_section, glue_table
from harness.results.report import ablation_table, accuracy_table

ONE_RUN_SIGNIFICANT = "p = 0.006 over the examples of one training run (not across seeds)"


def student(role: str | None, dev: list[float], p: float | None = None, against: str = "bilstm") -> dict:
    """A results entry scored on dev accuracy over len(dev) seeds (one: no `seeds`/`spread`, as results.json writes
    it), with an interval, and a paired test against `against` at p when given."""
    entry: dict = {"kind": "student", "scores": {"dev": {"accuracy": float(np.mean(dev))}},
                   "intervals": {"dev": {"accuracy": [float(np.mean(dev)) - 2, float(np.mean(dev)) + 2]}}}
    if role:
        entry["role"] = role
    if len(dev) > 1:
        entry["seeds"] = {str(13 + k): {"dev": {"accuracy": v}} for k, v in enumerate(dev)}
        entry["spread"] = {"dev": {"accuracy": {"mean": float(np.mean(dev)), "sd": float(np.std(dev, ddof=1)),
                                                "seeds": len(dev)}}}
    if p is not None:
        entry["test"] = {"against": against, "dev": {"accuracy": {
            "difference": 1.0, "p": p, "significant": p < stats.ALPHA,
            "test": "McNemar exact" if len(dev) == 1 else "paired permutation (1000 resamples)"}}}
    return entry


def results_of(models: dict) -> dict:
    return {"tasks": {"sst2": {"models": models}}}


def rows(df) -> dict[str, dict[str, str]]:
    return {r[df.columns[0]]: r for r in df.to_dict("records")}


def noise_rows(models: dict) -> dict[str, str]:
    """The "Is it noise?" table's verdict per model."""
    lines = [line for line in significance.section(models) if line.startswith("|")]
    table = next(line for line in lines[0].split("\n") if line.startswith("|"))
    header = [c.strip() for c in table.strip("|").split("|")]
    out = {}
    for line in lines[0].split("\n")[2:]:
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
        out[cells["model"]] = cells["verdict"]
    return out


def test_the_rule() -> None:
    """Both models need at least two seeds; a model's count is its `seeds` (results.json keeps them only for
    several), else one."""
    assert significance.covers_seeds(2, 2) and significance.covers_seeds(3, 5)
    assert not significance.covers_seeds(1, 3) and not significance.covers_seeds(1, 1) and not significance.covers_seeds()
    assert significance.seed_count(student(None, [80.0])) == 1
    assert significance.seed_count(student(None, [80.0, 81.0, 82.0])) == 3


def test_a_significant_one_run_test_gets_no_mark_and_says_one_run() -> None:
    """One seed each, p = 0.006: no † in the GLUE, accuracy or ablation tables; the verdict names one training run and
    never "significant"; the note under the tables says why."""
    models = {"bilstm": student("label-only", [82.57]), "bilstm_soft": student("distilled", [85.67], p=0.006)}
    results = results_of(models)
    assert rows(glue_table(results))["distilled student (bilstm_soft)"]["SST-2 acc"] == "85.67"
    assert rows(accuracy_table("sst2", models))["bilstm_soft"]["dev accuracy (ours)"] == "85.67"
    assert rows(ablation_table({**models, "v": {**student(None, [86.0], p=0.006, against="bilstm_soft"),
                                                "variant": {"base": "bilstm_soft", "changes": "x"}}}))["v"][
        "vs bilstm_soft"] == "+0.33 (one training run, p = 0.006)"
    assert noise_rows(models) == {"bilstm": "–", "bilstm_soft": ONE_RUN_SIGNIFICANT}
    assert "(significant:" not in "\n".join(significance.section(models))
    text = "\n".join(glue_section(results))
    assert significance.ONE_RUN_NOTE in text and significance.MARK_NOTE not in text


def test_a_one_run_test_within_noise_also_says_one_run() -> None:
    models = {"bilstm": student("label-only", [82.57]), "bilstm_soft": student("distilled", [83.0], p=0.41)}
    assert noise_rows(models)["bilstm_soft"] == \
        "p = 0.41 over the examples of one training run (not across seeds): within noise"
    variant = {**student(None, [83.5], p=0.41, against="bilstm_soft"), "variant": {"base": "bilstm_soft", "changes": "x"}}
    table = rows(ablation_table({**models, "v": variant}))
    assert table["bilstm_soft"]["vs bilstm"] == "+0.43 (within noise, one training run)"
    assert table["v"]["vs bilstm_soft"] == "+0.50 (within noise, one training run)"
    assert stats.verdict(models["bilstm_soft"]["test"]["dev"]["accuracy"], across_seeds=False).endswith("within noise")


def test_a_test_over_seeds_keeps_its_mark_and_wording() -> None:
    """Three seeds each: † stays, the verdict reads as before, the note is MARK_NOTE alone."""
    models = {"bilstm": student("label-only", [82.57, 83.83, 82.0]),
              "bilstm_soft": student("distilled", [85.67, 86.01, 85.44], p=0.002),
              "bilstm_soft_noaug": {**student(None, [85.7, 85.9, 85.75], p=0.94, against="bilstm_soft"),
                                    "variant": {"base": "bilstm_soft", "changes": "no augmentation"}}}
    results = results_of(models)
    assert rows(glue_table(results))["distilled student (bilstm_soft)"]["SST-2 acc"] == "85.71 ± 0.29†"
    assert rows(accuracy_table("sst2", models))["bilstm_soft"]["dev accuracy (ours)"] == "85.71 ± 0.29†"
    table = rows(ablation_table(models))
    assert table["bilstm_soft"]["vs bilstm"] == "+2.91 †"
    assert table["bilstm_soft_noaug"]["vs bilstm_soft"] == "+0.08 (within noise)"
    verdicts = noise_rows(models)
    assert verdicts == {"bilstm": "–", "bilstm_soft": "p = 0.002, significant", "bilstm_soft_noaug": "p = 0.94, within noise"}
    text = "\n".join(glue_section(results))
    assert significance.MARK_NOTE in text and significance.ONE_RUN_NOTE not in text


def test_both_models_of_the_pair_need_seeds() -> None:
    """A model of three seeds whose pair recorded one gets no †: the rule reads both sides."""
    models = {"bilstm": student("label-only", [82.0]), "bilstm_soft": student("distilled", [85.0, 86.0, 85.5], p=0.002)}
    assert not significance.pair_covers_seeds(models["bilstm_soft"], models)
    assert significance.pair_covers_seeds(models["bilstm_soft"])  # without the pair at hand: its own count
    assert rows(accuracy_table("sst2", models))["bilstm_soft"]["dev accuracy (ours)"] == "85.50 ± 0.50"


def test_a_task_of_each_kind_gets_both_notes() -> None:
    """The GLUE table over a one-seed task and a three-seed task: † where seeded, and both notes."""
    one = {"bilstm": student("label-only", [82.0]), "bilstm_soft": student("distilled", [85.0], p=0.006)}
    three = {"bilstm": student("label-only", [10.0, 12.0, 11.0]),
             "bilstm_soft": student("distilled", [20.0, 22.0, 21.0], p=0.002)}
    results = {"tasks": {"sst2": {"models": one}, "rte": {"models": three}}}
    distilled = rows(glue_table(results))["distilled student (bilstm_soft)"]
    assert (distilled["SST-2 acc"], distilled["RTE acc"]) == ("85.00", "21.00 ± 1.00†")
    note = next(line for line in glue_section(results) if line.startswith("±"))
    assert note == significance.MARK_NOTE + " " + significance.ONE_RUN_NOTE


@pytest.mark.parametrize(("seeds", "p", "want"), [
    (1, 0.006, "behind: p = 0.006 over the examples of one training run (not across seeds)"),
    (1, 0.41, "within noise: p = 0.41 over the examples of one training run (not across seeds)"),
    (3, 0.006, "behind (p = 0.006)"),
    (3, 0.41, "within noise (p = 0.41)"),
])
def test_which_student_says_when_its_test_is_one_run(seeds: int, p: float, want: str) -> None:
    best = student("distilled", [86.0] * seeds)
    other = student("label-only", [85.0] * seeds)
    other["vs_best"] = {"against": "best", "dev": {"accuracy": {"difference": -1.0, "p": p, "significant": p < 0.05,
                                                               "test": "McNemar exact"}}}
    speed = {"backend": "torch", "device": "cpu"}
    standing = frontier.against_best("other", other, speed, "best", "accuracy", {"best": best, "other": other})
    assert standing == want
    assert frontier.tied(frontier.Point("other", "torch", 85.0, 1.0, 0, standing)) == (p >= 0.05)


def write_run(run: Path, predictions: np.ndarray, labels: np.ndarray) -> None:
    """A run folder's kept dev predictions of `bilstm` (examples, seeds) on `labels`."""
    folder = samples.task_folder(run, "sst2")
    samples.write_examples(folder, ("sentence",), [("dev", Split([(f"s{i}",) for i in range(len(labels))],
                                                                  list(labels), "synthetic"))])
    outputs = {13 + s: {"dev": np.eye(2)[predictions[:, s]]} for s in range(predictions.shape[1])}
    samples.write_model(folder, "bilstm", outputs)


@pytest.mark.parametrize("seeds", [1, 2])
def test_compare_calls_a_delta_real_only_over_seeds(tmp_path: Path, seeds: int) -> None:
    """`compare`'s interval of a delta: `real` only when both runs trained the model on several seeds; else it
    names one training run."""
    labels = np.arange(400) % 2
    right = np.repeat(labels[:, None], seeds, axis=1)
    half = right.copy()
    half[::2] = 1 - half[::2]
    write_run(tmp_path / "a", half, labels)
    write_run(tmp_path / "b", right, labels)
    words = compare.noise(tmp_path / "a", tmp_path / "b", ("sst2", "bilstm", "dev accuracy"), {})
    assert words.startswith(" [+")
    assert words.endswith(" real" if seeds > 1 else " one training run") and ("real" in words) == (seeds > 1)


def test_the_report_names_each_tasks_seeds() -> None:
    """A run whose tasks trained different student seeds (a suite's `per_task` seeds) lists them by task."""
    from harness.results.report import seeds_words

    def task(seeds: list[int]) -> dict:
        return {"models": {}, "config": {"seeds": seeds if len(seeds) > 1 else []},
                **({"seeds": seeds} if len(seeds) > 1 else {})}

    results = {"seed": 13, "config": {"seeds": [], "teacher": {"per_seed": False}},
               "tasks": {"sst2": task([13]), "rte": task([13, 14, 15]), "cola": task([13, 14, 15])}}
    assert seeds_words(results) == ("Student seeds by task: seeds 13, 14, 15 on CoLA, RTE; seed 13 on SST-2 "
                                    "(the teacher once, seed 13)")
    results["tasks"] = {"rte": task([13, 14, 15])}
    assert seeds_words(results) == "Seeds 13, 14, 15 (students; the teacher once, seed 13)"
    results["tasks"] = {"sst2": task([13])}
    assert seeds_words(results) == "Seed 13"
