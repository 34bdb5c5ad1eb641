"""One real, tiny end-to-end run on a slice of real SST-2, its rerun from cache, and predict."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import pytest
from cli_runner import harness
from rescore import saved_accuracy

from harness.core.config import parse_set
from harness.core.registry import TASKS
from harness.data.augment import tokenize
from harness.data.split import Split, selection_split
from harness.data.tasks import read_tsv
from harness.engine.label import read_transfer_set
from harness.results.report import render

TRAIN_LIMIT = 300


@dataclass
class SmokeRun:
    """The outputs of the first run (snapshotted before the rerun) and of the rerun."""

    out: Path
    cache: Path
    results: dict
    report: str
    rerun_results: dict


# measure.threads=1: with 2 cores shared with other jobs, 2 torch threads make this run ~6x slower.
SETTINGS = ["teacher.name=hf_tiny", f"train_limit={TRAIN_LIMIT}", "dev_limit=100", "augment.n_iter=2", "measure.interactive_n=10",
            "measure.offline_n=256", "measure.teacher_offline_n=64", "measure.threads=1", "measure.references=elmo_tiny",
            "measure.reference_offline_n=32",
            "ablations="]  # variants have their own end-to-end test (test_ablations.py)


def smoke_args(out: Path, cache: Path) -> list[str]:
    """The smoke run's command line."""
    sets = [arg for setting in SETTINGS for arg in ("--set", setting)]
    return ["run", "--preset", "smoke", "--tasks", "sst2", "--students", "bilstm,bilstm_tiny", *sets,
            "--out", str(out), "--cache-dir", str(cache)]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> SmokeRun:
    """Run the smoke pipeline once, then the same command again."""
    tmp = tmp_path_factory.mktemp("smoke")
    out, cache = tmp / "run", tmp / "cache"
    args = smoke_args(out, cache)
    first = harness(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    report = (out / "report.md").read_text()
    second = harness(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    return SmokeRun(out, cache, results, report, json.loads((out / "results.json").read_text()))


def test_results_cover_every_model(smoke: SmokeRun, data_root: Path) -> None:
    """results.json scores the teacher and both students, sizes and times them and the reference on
    every backend that applies, and records the machine. Each recorded dev score (PyTorch, and each
    ONNX export's) is the saved model's accuracy on the run's 100 dev rows, recomputed here."""
    dev = read_tsv(data_root / "SST-2" / "dev.tsv", TASKS.get("sst2"), require_labels=True).head(100)
    sst2 = smoke.results["tasks"]["sst2"]
    assert sst2["data"]["train"] == TRAIN_LIMIT and sst2["data"]["dev"] == 100
    assert set(sst2["models"]) == {"teacher", "bilstm", "bilstm_tiny", "elmo_tiny"}
    backends = {"teacher": ["torch", "onnx"], "bilstm": ["torch", "onnx", "onnx-int8"],
                "bilstm_tiny": ["torch", "onnx", "onnx-int8"], "elmo_tiny": ["torch"]}
    for name, model in sst2["models"].items():
        assert model["params_total"] > 0, name
        assert [s["backend"] for s in model["speed"] if s["device"] == "cpu"] == backends[name]
        for timing in model["speed"]:
            assert 0 < timing["interactive"]["p50_ms"] <= timing["interactive"]["p99_ms"], name
            assert timing["offline"]["sentences_per_s"] > 0, name
            assert timing["peak_rss_gb"] >= 0.1, name  # this process: Python, torch and the run's data at the least
        folder = smoke.out / "models" / "sst2" / name
        if model["kind"] != "reference":
            assert model["scores"]["dev"]["accuracy"] == pytest.approx(saved_accuracy(folder, dev.texts, dev.labels)), name
        for timing in model["speed"][1:]:  # ONNX variants are scored on dev too
            backend = timing["backend"]
            assert timing["scores"]["accuracy"] == pytest.approx(saved_accuracy(folder, dev.texts, dev.labels, backend)), \
                (name, backend)
    onnx = sst2["models"]["bilstm"]["speed"][1]["scores"]["accuracy"]
    # the same model: at most one of 100 dev predictions may flip on a near-tie between backends
    assert abs(onnx - sst2["models"]["bilstm"]["scores"]["dev"]["accuracy"]) <= 1.0
    env = smoke.results["environment"]
    assert env["cpu"] and env["torch_threads"] == 1
    computed = [m for m in sst2["stages"].values() if not m.get("cached")]
    assert computed and all(m["peak_rss_gb"] >= 0.1 for m in computed)
    assert smoke.results["peak_rss_gb"] >= max(m["peak_rss_gb"] for m in computed)


def test_each_student_is_tested_against_the_most_accurate(smoke: SmokeRun) -> None:
    """The less accurate student carries a paired test against the more accurate one on dev (`vs_best`), whose
    difference is their dev scores' difference; the best student and the teacher carry none."""
    models = smoke.results["tasks"]["sst2"]["models"]
    dev = {name: models[name]["scores"]["dev"]["accuracy"] for name in ("bilstm", "bilstm_tiny")}
    best, other = sorted(dev, key=lambda name: -dev[name])
    assert "vs_best" not in models[best] and "vs_best" not in models["teacher"]
    test = models[other]["vs_best"]
    assert test["against"] == best and set(test) == {"against", "dev"}
    assert test["dev"]["accuracy"]["difference"] == pytest.approx(dev[other] - dev[best], abs=1e-4)
    assert test["dev"]["accuracy"]["test"] == "McNemar exact"


def test_report_and_plot(smoke: SmokeRun) -> None:
    """The report shows the task and labels the paper's numbers as reported; the plot exists."""
    assert "SST-2" in smoke.report and "reported, not measured" in smoke.report
    assert "offline speed-up vs ELMo" in smoke.report and "dynamic int8" in smoke.report
    assert (smoke.out / "plot.png").stat().st_size > 0
    assert render(smoke.results) == smoke.report  # what `harness report` renders from results.json alone, rows in order


def test_models_are_saved(smoke: SmokeRun) -> None:
    """Every trained model is copied under models/<task>/<name> with its weights and harness.json."""
    for name in ("teacher", "bilstm", "bilstm_tiny"):
        folder = smoke.out / "models" / "sst2" / name
        assert (folder / "harness.json").is_file() and (folder / "model.safetensors").is_file(), name
    assert not list((smoke.out / "models" / "sst2").glob(".*.tmp"))


def test_predict_with_saved_student(smoke: SmokeRun, data_root: Path, tmp_path: Path) -> None:
    """predict scores the whole real dev set with a saved student: the accuracy it prints is its written
    predictions' agreement with the file's labels, and on the run's 100 dev rows they score what the run
    recorded."""
    written = tmp_path / "SST-2.tsv"
    proc = harness("predict", "--model", str(smoke.out / "models" / "sst2" / "bilstm_tiny"),
                   "--input", str(data_root / "SST-2" / "dev.tsv"), "--output", str(written))
    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = json.loads(proc.stdout.strip().splitlines()[-1])
    with open(data_root / "SST-2" / "dev.tsv", newline="") as f:
        gold = [int(row["label"]) for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    preds = [int(line.split("\t")[1]) for line in written.read_text().splitlines()[1:]]
    assert scores["n"] == len(preds) == len(gold) == 872
    right = [p == y for p, y in zip(preds, gold)]
    assert scores["accuracy"] == pytest.approx(100 * sum(right) / 872)
    recorded = smoke.results["tasks"]["sst2"]["models"]["bilstm_tiny"]["scores"]["dev"]["accuracy"]
    assert sum(right[:100]) == pytest.approx(recorded)  # of 100 rows: the percentage is the count


def test_rerun_reuses_every_stage(smoke: SmokeRun) -> None:
    """The first run computes every stage; the same command again reuses them all."""
    first = smoke.results["tasks"]["sst2"]["stages"]
    again = smoke.rerun_results["tasks"]["sst2"]["stages"]
    assert set(first) == set(again) == {"teacher", "augment", "label", "bilstm", "bilstm_tiny"}
    assert not any(meta["cached"] for meta in first.values())
    assert all(meta["cached"] for meta in again.values())
    assert {k: m["key"] for k, m in first.items()} == {k: m["key"] for k, m in again.items()}


def test_dry_run_names_what_a_run_reuses(smoke: SmokeRun) -> None:
    """`--dry-run` after the run: every stage cached, under the keys the run used, with the time computing it took;
    nothing written (the cache's and the run folder's files are as they were). A changed student setting leaves the
    teacher, the transfer set and its labels cached, and names the student it changes as to compute, under a new key."""
    def files() -> list:
        return sorted((p, p.stat().st_mtime_ns) for p in [*smoke.cache.rglob("*"), *smoke.out.rglob("*")])

    before = files()
    shown = harness(*smoke_args(smoke.out, smoke.cache), "--dry-run")
    assert shown.returncode == 0, shown.stderr[-3000:]
    first = smoke.results["tasks"]["sst2"]["stages"]
    rows = {cells[1]: cells[2:] for line in shown.stdout.splitlines() if line.startswith("| sst2 ")
            for cells in [[cell.strip() for cell in line.strip("|").split("|")]]}
    for name, meta in first.items():
        state, key, notes = rows[name]
        took = f"took {meta['seconds']:,.{0 if meta['seconds'] >= 10 else 1}f} s, "
        assert (state, key) == ("cached", meta["key"]) and notes.startswith(took), rows[name]
    assert "5 of 5 stages would come from the cache and 0 would be computed" in shown.stdout
    assert "(it exists: its results.json and report.md would be replaced)" in shown.stdout
    assert files() == before

    from harness import api

    plan = api.plan(preset="smoke", tasks="sst2", students="bilstm,bilstm_tiny", cache_dir=smoke.cache,
                    overrides={**parse_set(SETTINGS), "student.epochs": 1})
    steps = {step["name"]: step for step in plan["sst2"]}
    # (the tiny variant trains one epoch whatever student.epochs says: its key and entry stay)
    assert {name: step["state"] for name, step in steps.items()} == {
        "teacher": "cached", "augment": "cached", "label": "cached", "bilstm": "to compute", "bilstm_tiny": "cached"}
    for name, meta in first.items():
        assert (steps[name]["key"] == meta["key"]) == (name != "bilstm")
    assert files() == before


def test_transfer_set_has_originals_first(smoke: SmokeRun, data_root: Path) -> None:
    """The transfer set starts with the training slice (gold labels): the file's first rows that are not
    in the selection split; then unique synthetic rows."""
    meta = smoke.results["tasks"]["sst2"]["stages"]["augment"]
    table = read_transfer_set(smoke.cache / "augment" / meta["key"] / "transfer.arrow")
    with open(data_root / "SST-2" / "train.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    held_out, _ = selection_split(Split([(r["sentence"],) for r in rows], None, "train.tsv"), 0.05,
                                  smoke.results["tasks"]["sst2"]["data"]["selection"]["limit"])
    held = set(held_out.texts)
    gold = list(islice((r for r in rows if (r["sentence"],) not in held), TRAIN_LIMIT))
    texts, labels = table.column("text_a").to_pylist(), table.column("label").to_pylist()
    assert len(texts) == meta["rows"] and meta["originals"] == TRAIN_LIMIT and meta["synthetic"] > 0
    assert texts[:TRAIN_LIMIT] == [" ".join(tokenize(row["sentence"])) for row in gold]
    assert labels[:TRAIN_LIMIT] == [int(row["label"]) for row in gold]
    assert len(held_out) == 300 and not {" ".join(tokenize(t[0])) for t in held} & set(texts[:TRAIN_LIMIT])
    assert set(labels[TRAIN_LIMIT:]) == {-1}
    assert len(set(texts[TRAIN_LIMIT:])) == len(texts) - TRAIN_LIMIT
    assert not set(texts[:TRAIN_LIMIT]) & set(texts[TRAIN_LIMIT:])
    # 5 held-out phrases lie word for word inside the 300 training rows: counted in results and said in the report
    inside = smoke.results["tasks"]["sst2"]["data"]["selection"]["inside_train"]
    assert inside["selection"] == sum(held_out.inside(Split([(r["sentence"],) for r in gold], None, "slice"))) == 5
    assert "5 of the selection split's examples" in smoke.report


def test_status_after_the_run(smoke: SmokeRun) -> None:
    """The run kept status.json: finished, with each stage it took from the cache, in order, and the plan it
    found at its start; `harness status` says so."""
    status = json.loads((smoke.out / "status.json").read_text())
    assert status["state"] == "finished"
    assert [s["stage"] for s in status["stages"]] == ["teacher", "augment", "label", "student", "student"]
    assert all(s["cached"] and s["task"] == "sst2" for s in status["stages"])  # the rerun's: all from the cache
    assert [(s["stage"], s["compute"]) for s in status["plan"]] == [  # what the rerun found ahead at its start
        ("teacher", False), ("augment", False), ("label", False), ("bilstm", False), ("bilstm_tiny", False)]
    shown = harness("status", str(smoke.out))
    assert shown.returncode == 0 and f"{smoke.out}: finished" in shown.stdout
    assert "task sst2, last stage student (from the cache" in shown.stdout
