"""Several student seeds end to end (tiny teacher, real SST-2 slice): one seed's scores are unchanged,
models land per seed, and the statistics in results.json are those of the per-example predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import harness

from harness.results import samples, stats

ARGS = ["run", "--preset", "smoke", "--tasks", "sst2", "--set", "teacher.name=hf_tiny", "--students", "bilstm,bilstm_tiny",
        "--set", "train_limit=200", "--set", "dev_limit=120", "--set", "augment.n_iter=1", "--set", "student.epochs=2",
        "--set", "measure.enabled=false", "--set", "ablations=", "--set", "stats.resamples=200"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> tuple[Path, Path]:
    """The same run with seeds 13 and 14, then with the default seed alone (13), on one cache."""
    tmp = tmp_path_factory.mktemp("seeds")
    two, one = tmp / "two", tmp / "one"
    for out, extra in ((two, ["--seeds", "13,14"]), (one, [])):
        done = harness(*ARGS, *extra, "--out", str(out), "--cache-dir", str(tmp / "cache"))
        assert done.returncode == 0, done.stderr[-3000:]
    return two, one


def models(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())["tasks"]["sst2"]["models"]


def test_one_seed_is_unchanged(runs: tuple[Path, Path]) -> None:
    """The default seed's students in a two-seed run score as the one-seed run's; the one-seed layout
    and entries have no per-seed parts."""
    two, one = runs
    for name in ("bilstm", "bilstm_tiny"):
        assert models(two)[name]["seeds"]["13"] == models(one)[name]["scores"]
        assert "seeds" not in models(one)[name] and "spread" not in models(one)[name]
        assert (one / "models" / "sst2" / name / "harness.json").is_file()
        assert {p.name for p in (two / "models" / "sst2" / name).iterdir()} == {"seed-13", "seed-14"}
    assert (two / "models" / "sst2" / "teacher" / "harness.json").is_file()  # one teacher, not per seed


def test_scores_are_means_with_their_spread(runs: tuple[Path, Path]) -> None:
    two, _ = runs
    m = models(two)["bilstm"]
    per_seed = [m["seeds"][s]["dev"]["accuracy"] for s in ("13", "14")]
    assert m["scores"]["dev"]["accuracy"] == pytest.approx(np.mean(per_seed))
    assert m["spread"]["dev"]["accuracy"]["sd"] == pytest.approx(np.std(per_seed, ddof=1))


def test_statistics_come_from_the_kept_predictions(runs: tuple[Path, Path]) -> None:
    """The per-example files hold every seed's dev and test predictions; the interval and the paired test
    recomputed from them equal results.json's."""
    two, _ = runs
    folder = samples.task_folder(two, "sst2")
    examples = samples.read(folder, samples.EXAMPLES)
    labels = samples.labels_of(examples, "dev")
    assert len(labels) == 120 and set(examples["split"]) == {"selection", "dev", "test"}
    assert examples[examples["split"] == "test"]["label"].isna().all()  # GLUE's test set: no labels here
    tiny, plain = samples.read(folder, "bilstm_tiny"), samples.read(folder, "bilstm")
    a, b = samples.seed_columns(tiny, "dev"), samples.seed_columns(plain, "dev")
    assert a.shape == (120, 2) and len(samples.seed_columns(tiny, "test")) == 1821
    assert 100 * np.mean(a[:, 0] == labels) == pytest.approx(models(two)["bilstm_tiny"]["seeds"]["13"]["dev"]["accuracy"])
    test = models(two)["bilstm_tiny"]["test"]
    assert test["against"] == "bilstm"  # a distilled student against its family's label-only one
    again = stats.paired_test("accuracy", labels, a, b, resamples=200, seed=13)
    assert test["dev"]["accuracy"]["p"] == pytest.approx(again["p"], abs=1e-6)
    low, high = stats.interval("accuracy", labels, a, resamples=200, seed=13)
    assert models(two)["bilstm_tiny"]["intervals"]["dev"]["accuracy"] == pytest.approx([low, high], abs=1e-4)
    assert "### Is it noise?" in (two / "report.md").read_text()


def test_compare_gives_intervals_on_shared_examples(runs: tuple[Path, Path]) -> None:
    """Two runs on the same dev examples: each score delta has its paired bootstrap interval (named as one training
    run's where a run trained one seed), the same run against itself is within noise at exactly 0, and rows without
    kept predictions (latencies) have none."""
    from harness.results.compare import compare

    two, one = runs
    table = compare([one, two])
    row = next(line for line in table.splitlines() if "| bilstm " in line and "dev accuracy" in line)
    assert "[" in row and "one training run" in row and "real" not in row  # `one`: one seed, so never "real"
    same = compare([two, two])
    assert "+0.00 [+0.00, +0.00] within noise" in same


def test_report_lists_where_teacher_and_student_disagree_most(runs: tuple[Path, Path]) -> None:
    """`report --disagreements 3`: per student, the 3 dev examples furthest from the teacher, ranked by the
    total variation distance between their seed-averaged class probabilities, recomputed here."""
    from scipy.special import softmax

    two, _ = runs
    done = harness("report", str(two), "--disagreements", "3")
    assert done.returncode == 0, done.stderr[-2000:]
    text = (two / "disagreements.md").read_text()
    folder = samples.task_folder(two, "sst2")
    teacher = softmax(np.stack(samples.read(folder, "teacher").query("split == 'dev'").sort_values("example")["output"]), 1)
    tiny = samples.read(folder, "bilstm_tiny").query("split == 'dev'")
    student = np.mean([softmax(np.stack(g.sort_values("example")["output"]), 1) for _, g in tiny.groupby("seed")], axis=0)
    gap = 0.5 * np.abs(teacher - student).sum(1)
    section = text.split("## sst2: `bilstm_tiny` against the teacher")[1].split("##")[0]
    lines = [line for line in section.splitlines() if line.startswith("|")][2:]
    assert len(lines) == 3
    shown = [(int(line.split("|")[1]), float(line.split("|")[-2])) for line in lines]
    assert [e for e, _ in shown] == list(np.argsort(-gap, kind="stable")[:3])
    assert [g for _, g in shown] == pytest.approx(np.sort(gap)[::-1][:3], abs=0.005)
    assert "## sst2: `bilstm` against the teacher" in text
    bad = harness("report", str(two), "--disagreements", "0")
    assert bad.returncode == 2 and "--disagreements 0" in bad.stderr
