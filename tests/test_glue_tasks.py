"""GLUE's other tasks: the shipped files load with GLUE's row counts, metrics by name equal
scikit-learn/scipy, regression predictions and losses, variants refused for regression, and a tiny
STS-B run end to end through the command line (float predictions, predict in GLUE's format)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from cli_runner import harness
from rescore import saved_outputs
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
from test_pair_cli import last_json, one_line_error, saved_pair_student

from harness.core.config import SUITES_DIR, RunConfig, StudentConfig, load_suite
from harness.core.errors import HarnessError
from harness.core.metrics import improved, predictions, score, score_outputs, worst
from harness.core.registry import STUDENTS, TASKS
from harness.core.variants import StudentJob, student_jobs
from harness.data.tasks import load_task, read_tsv
from harness.engine.distill import EarlyStopping, distill_loss
from harness.engine.student_stage import check_job_fits
from students.bilstm import BiLSTMSettings

# GLUE's row counts (train, dev, test), as its data ships (shared/data/README.md and PROVENANCE.md)
GLUE_ROWS = {"cola": (8_551, 1_043, 1_063), "mrpc": (3_668, 408, 1_725), "rte": (2_490, 277, 3_000),
             "stsb": (5_749, 1_500, 1_379)}


@pytest.mark.parametrize("task", sorted(GLUE_ROWS))
def test_shipped_files_load_with_glue_row_counts(task: str, data_root: Path) -> None:
    """CoLA's header-less train/dev, MRPC's byte-order mark and unbalanced quote, STS-B's float scores:
    every row read, labels of the right kind, test sets unlabelled."""
    splits = load_task(task)
    assert tuple(len(splits[s]) for s in ("train", "validation", "test")) == GLUE_ROWS[task]
    assert splits["test"].labels is None
    labels = splits["train"].labels + splits["validation"].labels
    if task == "stsb":
        assert all(isinstance(x, float) and 0 <= x <= 5 for x in labels) and 3.8 in labels  # not truncated to 3
    else:
        assert set(labels) == {0, 1}
    assert all(all(s.strip() for s in t) for t in splits["train"].texts)


def test_cola_first_rows_and_mrpc_unbalanced_quote(data_root: Path) -> None:
    """The first CoLA row is data, not a header; MRPC's train row with one `"` stays one row."""
    cola = load_task("cola")["train"]
    assert cola.texts[0] == ("Our friends won't buy this analysis, let alone the next one we propose.",)
    assert cola.labels[0] == 1
    mrpc = load_task("mrpc")["train"]
    quoted = [t for t in mrpc.texts if t[0].startswith("Officials at Brandeis said")]
    assert len(quoted) == 1 and quoted[0][1].count('"') == 1


def test_bad_score_names_file_and_line(tmp_path: Path) -> None:
    stsb = TASKS.get("stsb")
    path = tmp_path / "dev.tsv"
    path.write_text("sentence1\tsentence2\tscore\na\tb\t4.2\nc\td\t5.5\n")
    with pytest.raises(HarnessError, match=r"dev.tsv:3: score '5.5' is not a number in 0..5"):
        read_tsv(path, stsb, require_labels=True)
    path.write_text("sentence1\tsentence2\tscore\na\tb\thigh\n")
    with pytest.raises(HarnessError, match=r"dev.tsv:2: score 'high'"):
        read_tsv(path, stsb, require_labels=True)


def test_headerless_cola_line_numbers(tmp_path: Path) -> None:
    """Without a header, the first row is line 1."""
    path = tmp_path / "train.tsv"
    path.write_text("gj04\t1\t\tGood.\ngj04\t7\t*\tBad.\n")
    with pytest.raises(HarnessError, match=r"train.tsv:2: label '7'"):
        read_tsv(path, TASKS.get("cola"), require_labels=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_sklearn_and_scipy(seed: int) -> None:
    """Each metric by name is its library's value x 100, on random inputs; MCC may be negative."""
    rng = np.random.default_rng(seed)
    y, p = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    got = score(("accuracy", "f1", "mcc"), y, p)
    assert got["accuracy"] == pytest.approx(100 * accuracy_score(y, p))
    assert got["f1"] == pytest.approx(100 * f1_score(y, p))
    assert got["mcc"] == pytest.approx(100 * matthews_corrcoef(y, p))
    assert score(("mcc",), y, 1 - y)["mcc"] == pytest.approx(-100.0)  # perfectly wrong: -1
    a, b = rng.uniform(0, 5, 300), rng.uniform(0, 5, 300)
    got = score(("pearson", "spearman"), a, b)
    assert got["pearson"] == pytest.approx(100 * pearsonr(a, b)[0])
    assert got["spearman"] == pytest.approx(100 * spearmanr(a, b)[0])
    assert score(("pearson",), a, -a)["pearson"] == pytest.approx(-100.0)


def test_constant_predictions() -> None:
    """A correlation of constant predictions is undefined (NaN, never a selection); MCC is 0."""
    assert math.isnan(score(("pearson",), [1.0, 2.0, 3.0], [2.0, 2.0, 2.0])["pearson"])
    assert score(("mcc",), [0, 1, 1], [1, 1, 1])["mcc"] == 0.0
    assert not improved("pearson", math.nan, worst("pearson"))
    assert improved("mcc", -100.0, worst("mcc"))


def test_predictions_are_argmax_or_the_value() -> None:
    """One helper for every task: (N, K >= 2) outputs give class indices, (N, 1) the score itself."""
    assert predictions(np.array([[0.1, 0.9], [2.0, -1.0]])).tolist() == [1, 0]
    assert predictions(np.array([[3.25], [0.5]], dtype=np.float32)).tolist() == [3.25, 0.5]
    assert score_outputs(("pearson",), [1.0, 2.0, 3.0], np.array([[1.0], [2.5], [2.9]]))["pearson"] > 90


def test_early_stopping_starts_below_every_score() -> None:
    """A CoLA model whose MCC never rises above -100 still has its best weights kept (the old start
    at -1.0 kept none); the first check's weights are kept even when its score is undefined."""
    model = torch.nn.Linear(1, 1, bias=False)
    stopper = EarlyStopping(patience=3, metric="mcc")
    for step, value in enumerate([-100.0, -100.0]):
        model.weight.data.fill_(float(step))
        stopper.update(value, model)
    model.weight.data.fill_(9.0)
    stopper.restore(model)
    assert stopper.best == -100.0 and model.weight.item() == 0.0
    nan_first = EarlyStopping(patience=3, metric="pearson")
    nan_first.update(math.nan, model)
    assert nan_first.state is not None
    nan_first.update(12.0, model)
    assert nan_first.best == 12.0


def test_regression_losses() -> None:
    """One output: label-only students regress the gold score (squared error), distilled ones the
    teacher's score with the paper's MSE; alpha mixes the two."""
    student = torch.tensor([[1.0], [3.0]])
    gold, teacher = torch.tensor([2.0, 3.0]), torch.tensor([[1.5], [2.0]])
    assert distill_loss(student, gold, None, 0.0).item() == pytest.approx((1.0 + 0.0) / 2)
    assert distill_loss(student, gold, teacher, 0.0).item() == pytest.approx((0.25 + 1.0) / 2)
    assert distill_loss(student, gold, teacher, 0.5).item() == pytest.approx(0.5 * 0.5 + 0.5 * 0.625)


@pytest.mark.parametrize("loss", ["kl", "hard"])
def test_class_losses_refused_for_regression(loss: str) -> None:
    """kl and hard need classes: refused for STS-B with a message naming the fix, allowed for MRPC."""
    cfg = RunConfig(students=("siamese_bilstm_soft",), student=StudentConfig(loss=loss))
    job = student_jobs(cfg, 2)[0]
    with pytest.raises(HarnessError, match=f"student.loss={loss} needs classes.*stsb is a regression task"):
        check_job_fits(job, TASKS.get("stsb"))
    check_job_fits(job, TASKS.get("mrpc"))
    label_only = StudentJob("siamese_bilstm", "siamese_bilstm", StudentConfig(), BiLSTMSettings(), transfer=False)
    check_job_fits(label_only, TASKS.get("stsb"))


def test_shipped_suites_fit_their_tasks() -> None:
    """Every task of every shipped preset gets students and variants that fit it (STS-B: no kl/hard)."""
    presets = [None, *yaml.safe_load((SUITES_DIR / "glue.yaml").read_text())["presets"]]
    assert {"smoke", "quick", "full", "zoo"} <= set(presets)
    for preset in presets:
        cfg, _ = load_suite("glue", preset)
        for name in cfg.tasks:
            task, task_cfg = TASKS.get(name), cfg.for_task(name)
            jobs = student_jobs(task_cfg, len(task.text_columns))
            # the task's own students first, as the suite lists them, then its variants
            assert task_cfg.students and [j.name for j in jobs[: len(task_cfg.students)]] == list(task_cfg.students)
            for job in jobs:
                check_job_fits(job, task)
                assert STUDENTS.get(job.base).columns == len(task.text_columns), (preset, name, job.name)
                assert not (task.is_regression and STUDENTS.get(job.base).distill and job.student.loss != "mse"), \
                    (preset, name, job.name, job.student.loss)
            if preset is None and name == "stsb":  # the paper's protocol: every variant but kl and hard
                assert [(j.name, j.student.loss) for j in jobs] == [
                    ("siamese_bilstm", "mse"), ("siamese_bilstm_soft", "mse"),
                    *((f"siamese_bilstm_soft_{v}", "mse") for v in ("noaug", "alpha05", "mask_only", "pos_only", "ngram_only"))]


@pytest.mark.slow
def test_variant_refused_on_the_command_line(tmp_path: Path) -> None:
    """Asking for a kl variant on STS-B stops before any work, with one line naming it."""
    proc = harness("run", "--tasks", "stsb", "--set", "ablations=siamese_bilstm_soft_kl_t2", "--out", str(tmp_path / "o"),
                   "--cache-dir", str(tmp_path / "c"), timeout=120)
    one_line_error(proc, "siamese_bilstm_soft_kl_t2", "regression")
    assert not (tmp_path / "o").exists()


TRAIN, DEV = 300, 100


@pytest.fixture(scope="module")
def stsb_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """A tiny regression pipeline from a suite listing stsb and wnli (no --tasks): hf_tiny teacher, both
    Siamese students on 300 real STS-B pairs; WNLI has no data here, so it is named as not run."""
    tmp = tmp_path_factory.mktemp("stsb")
    suite = tmp / "tiny.yaml"
    suite.write_text(yaml.safe_dump({
        "tasks": ["stsb", "wnli"], "students": ["siamese_bilstm", "siamese_bilstm_tiny"], "train_limit": TRAIN,
        "dev_limit": DEV, "teacher": {"name": "hf_tiny", "epochs": 1}, "augment": {"n_iter": 2},
        "student": {"epochs": 1, "batch_size": 32, "hidden": 8, "fc": 8},
        "measure": {"threads": 1, "warmup": 1, "interactive_n": 5, "offline_n": 64, "teacher_offline_n": 32,
                    "references": [], "backends": ["torch"]},
    }))
    out = tmp / "run"
    proc = harness("run", "--suite", str(suite), "--out", str(out), "--cache-dir", str(tmp / "cache"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_regression_run_end_to_end(stsb_run: Path, data_root: Path) -> None:
    """Teacher, labelling (one score per row) and both students run; dev is scored with Pearson and
    Spearman (each model's, recomputed here with scipy from its saved weights on the run's 100 dev
    pairs); roles are recorded; the label-only student regresses gold scores."""
    results = json.loads((stsb_run / "results.json").read_text())
    stsb = results["tasks"]["stsb"]
    assert stsb["regression"] is True and stsb["metrics"] == ["pearson", "spearman"]
    assert {n: m.get("role") for n, m in stsb["models"].items()} == {
        "teacher": "teacher", "siamese_bilstm": "label-only", "siamese_bilstm_tiny": "distilled"}
    dev = read_tsv(data_root / "STS-B" / "dev.tsv", TASKS.get("stsb"), require_labels=True).head(DEV)
    for name, model in stsb["models"].items():
        outputs = saved_outputs(stsb_run / "models" / "stsb" / name, dev.texts)
        assert outputs.shape == (DEV, 1), name
        expected = {"pearson": 100 * pearsonr(dev.labels, outputs[:, 0])[0],
                    "spearman": 100 * spearmanr(dev.labels, outputs[:, 0])[0]}
        assert model["scores"]["dev"] == pytest.approx(expected, nan_ok=True), name
    assert stsb["stages"]["augment"]["synthetic"] > 0
    assert stsb["stages"]["siamese_bilstm_tiny"]["train_examples"] == stsb["stages"]["augment"]["rows"]


@pytest.mark.slow
def test_tasks_without_data_are_named(stsb_run: Path) -> None:
    """A suite's task without training data is skipped, and results and report say why."""
    results = json.loads((stsb_run / "results.json").read_text())
    assert set(results["tasks"]) == {"stsb"} and "WNLI/train.tsv" in results["not_run"]["wnli"]
    report = (stsb_run / "report.md").read_text()
    assert "- wnli: not run, no training data" in report and "STS-B Pearson/Spearman" in report


@pytest.mark.slow
def test_predict_stsb_dev_and_test(stsb_run: Path, data_root: Path, tmp_path: Path) -> None:
    """predict prints n, pearson and spearman on the real dev file, and writes GLUE's submission format
    (index, float score) for dev and for the unlabelled test file."""
    model = stsb_run / "models" / "stsb" / "siamese_bilstm_tiny"
    out = tmp_path / "STS-B.tsv"
    scores = last_json(harness("predict", "--model", str(model), "--input", str(data_root / "STS-B" / "dev.tsv"),
                               "--output", str(out)))
    assert set(scores) == {"n", "pearson", "spearman"} and scores["n"] == 1_500
    lines = out.read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 1_501
    assert all(i == str(k) and "." in v for k, (i, v) in enumerate(line.split("\t") for line in lines[1:]))
    # what it writes is the saved model's outputs to 3 decimals, and what it prints their correlations with
    # the file's scores, both recomputed here (not from the written file: its rounding ties near-equal scores)
    dev = read_tsv(data_root / "STS-B" / "dev.tsv", TASKS.get("stsb"), require_labels=True)
    outputs = saved_outputs(model, dev.texts)[:, 0]
    assert [line.split("\t")[1] for line in lines[1:]] == [f"{x:.3f}" for x in outputs]
    assert scores["pearson"] == pytest.approx(100 * pearsonr(dev.labels, outputs)[0])
    assert scores["spearman"] == pytest.approx(100 * spearmanr(dev.labels, outputs)[0])
    proc = harness("predict", "--model", str(model), "--input", str(data_root / "STS-B" / "test.tsv"), "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(out.read_text().splitlines()) == 1 + 1_379


@pytest.mark.slow
def test_predict_label_names_where_glue_wants_them(tmp_path: Path, data_root: Path) -> None:
    """RTE's submission holds label names, MRPC's class indices; RTE dev prints accuracy, MRPC accuracy and F1."""
    for task, names in (("rte", {"entailment", "not_entailment"}), ("mrpc", {"0", "1"})):
        model = saved_pair_student(tmp_path / task, task, 2, ["the company said it would"])
        folder = data_root / ("RTE" if task == "rte" else "MRPC")
        out = tmp_path / f"{task}.tsv"
        scores = last_json(harness("predict", "--model", str(model), "--input", str(folder / "dev.tsv"), "--output", str(out)))
        assert set(scores) == ({"n", "accuracy"} if task == "rte" else {"n", "accuracy", "f1"})
        written = [line.split("\t")[1] for line in out.read_text().splitlines()[1:]]
        assert set(written) <= names
        # the printed scores are the written predictions' against the file's labels, recomputed here
        labels = read_tsv(folder / "dev.tsv", TASKS.get(task), require_labels=True).labels
        gold = [TASKS.get(task).label_names[y] if task == "rte" else str(y) for y in labels]
        assert scores["n"] == len(written) == len(gold)
        assert scores["accuracy"] == pytest.approx(100 * sum(w == g for w, g in zip(written, gold)) / len(gold))
        if task == "mrpc":
            assert scores["f1"] == pytest.approx(100 * f1_score([int(g) for g in gold], [int(w) for w in written],
                                                                zero_division=0))
