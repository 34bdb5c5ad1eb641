"""Pair tasks through the command line: MNLI without a training set fails clearly; a tiny MNLI run
end to end (plumbing only: its "training set" is a slice of the real dev set); predict on QQP's
and GLUE/MNLI's file layouts."""

from __future__ import annotations

import gzip
import json
import subprocess
from itertools import islice
from pathlib import Path

import pytest
import torch
from cli_runner import harness
from rescore import saved_accuracy, saved_outputs
from sklearn.metrics import f1_score

from harness.core.registry import STUDENTS, TASKS
from harness.data.tasks import read_tsv
from harness.engine.stages import seal_model
from harness.engine.wordmodel import StudentPredictor, Vocab
from students.bilstm import BiLSTMSettings

FIXTURES = Path(__file__).parent / "fixtures" / "glue"
TRAIN, DEV = 240, 80


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit status 2, no traceback, one stderr line `error: ...` holding every needle."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr and len(lines) == 1 and lines[0].startswith("error:"), lines
    for needle in needles:
        assert needle in lines[0], lines[0]


def last_json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_mnli_without_train_split(tmp_path: Path, data_root: Path) -> None:
    """The shared MNLI has dev files only: offline, `run --tasks mnli` names what is missing and how
    to supply it, and writes no results."""
    proc = harness("run", "--tasks", "mnli", "--students", "siamese_bilstm_tiny", "--set", "teacher.name=hf_tiny",
                   "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), timeout=300)
    one_line_error(proc, "MNLI/train.tsv", "dev_matched.tsv", "--data-dir", "hub")
    assert not (tmp_path / "out" / "results.json").exists()


@pytest.fixture(scope="module")
def mnli_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """PLUMBING ONLY, NOT A RESULT: a GLUE-layout MNLI folder whose train.tsv is the first 240 rows of
    the real dev_mismatched set (MNLI's train set is not available here), dev_matched its first 80
    rows, dev_mismatched 80 other mismatched rows; then a tiny run with the hf_tiny teacher, both
    pair students and small measurements. Returns the run folder."""
    tmp = tmp_path_factory.mktemp("mnli")
    folder = tmp / "data" / "MNLI"
    folder.mkdir(parents=True)
    matched = (data_root / "MNLI" / "dev_matched.tsv").read_text().splitlines(keepends=True)
    mismatched = (data_root / "MNLI" / "dev_mismatched.tsv").read_text().splitlines(keepends=True)
    (folder / "train.tsv").write_text("".join(mismatched[: 1 + TRAIN]))
    (folder / "dev_matched.tsv").write_text("".join(matched[: 1 + DEV]))
    (folder / "dev_mismatched.tsv").write_text("".join(mismatched[:1] + mismatched[1 + TRAIN : 1 + TRAIN + DEV]))
    out = tmp / "run"
    proc = harness("run", "--preset", "smoke", "--tasks", "mnli", "--data-dir", str(tmp / "data"),
                   "--set", "teacher.name=hf_tiny", "--students", "siamese_bilstm,siamese_bilstm_tiny",
                   "--set", f"train_limit={TRAIN}", "--set", f"dev_limit={DEV}", "--set", "augment.n_iter=2",
                   "--set", "student.batch_size=32", "--set", "measure.threads=1", "--set", "measure.warmup=1",
                   "--set", "measure.interactive_n=5", "--set", "measure.offline_n=64",
                   "--set", "measure.teacher_offline_n=32", "--set", "measure.references=[]", "--set", "ablations=[]",
                   "--out", str(out), "--cache-dir", str(tmp / "cache"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_mnli_run_end_to_end(mnli_run: Path) -> None:
    """Teacher, augmentation, labelling and both pair students run on pairs; every model is scored
    on dev and timed on PyTorch and ONNX (int8 too for students, scored beside fp32). Each recorded
    dev score is the saved model's (or its export's) accuracy on the 80 dev pairs, recomputed here."""
    dev = read_tsv(mnli_run.parent / "data" / "MNLI" / "dev_matched.tsv", TASKS.get("mnli"), require_labels=True)
    assert len(dev) == DEV
    mnli = json.loads((mnli_run / "results.json").read_text())["tasks"]["mnli"]
    held_out = mnli["data"]["selection"]["examples"]  # 5% of the training file: the selection split
    assert held_out == round(0.05 * TRAIN) and mnli["data"]["train"] == TRAIN - held_out and mnli["data"]["dev"] == DEV
    assert mnli["data"]["duplicates"] == {"train": 0, "dev": 0}  # Split.duplicates of the rows used (legal, counted)
    assert set(mnli["models"]) == {"teacher", "siamese_bilstm", "siamese_bilstm_tiny"}
    assert mnli["stages"]["augment"]["synthetic"] > 0
    for name, model in mnli["models"].items():
        folder = mnli_run / "models" / "mnli" / name
        assert model["scores"]["dev"]["accuracy"] == pytest.approx(saved_accuracy(folder, dev.texts, dev.labels)), name
        backends = [s["backend"] for s in model["speed"] if s["device"] == "cpu"]
        assert backends == (["torch", "onnx"] if name == "teacher" else ["torch", "onnx", "onnx-int8"]), name
        for timing in model["speed"][1:]:
            backend = timing["backend"]
            assert timing["scores"]["accuracy"] == pytest.approx(saved_accuracy(folder, dev.texts, dev.labels, backend)), \
                (name, backend)
    for name in ("teacher", "siamese_bilstm", "siamese_bilstm_tiny"):
        assert (mnli_run / "models" / "mnli" / name / "harness.json").is_file()
    assert mnli["data"]["unit"] == "pairs" and "67,349 pairs, batch 512, s" in (mnli_run / "report.md").read_text()


@pytest.mark.slow
def test_mnli_mismatched_dev_is_scored(mnli_run: Path) -> None:
    """MNLI's second dev set (mismatched) is scored too, as `dev_mismatched`: each model's accuracy on its 80 pairs,
    recomputed here from the saved model."""
    mismatched = read_tsv(mnli_run.parent / "data" / "MNLI" / "dev_mismatched.tsv", TASKS.get("mnli"), require_labels=True)
    assert len(mismatched) == DEV
    mnli = json.loads((mnli_run / "results.json").read_text())["tasks"]["mnli"]
    assert set(mnli["models"]) == {"teacher", "siamese_bilstm", "siamese_bilstm_tiny"}
    for name, model in mnli["models"].items():
        folder = mnli_run / "models" / "mnli" / name
        assert model["scores"]["dev_mismatched"] == {
            "accuracy": pytest.approx(saved_accuracy(folder, mismatched.texts, mismatched.labels))}, name


@pytest.mark.slow
def test_predict_real_mismatched_dev(mnli_run: Path, data_root: Path, tmp_path: Path) -> None:
    """A student trained by `run` predicts the whole real 6-column dev_mismatched file; the accuracy it
    prints is its written label names' agreement with the file's."""
    written = tmp_path / "MNLI-mm.tsv"
    scores = last_json(harness("predict", "--model", str(mnli_run / "models" / "mnli" / "siamese_bilstm_tiny"),
                               "--input", str(data_root / "MNLI" / "dev_mismatched.tsv"), "--output", str(written)))
    assert set(scores) == {"n", "accuracy"} and scores["n"] == 9_832
    task = TASKS.get("mnli")
    gold = [task.label_names[y] for y in read_tsv(data_root / "MNLI" / "dev_mismatched.tsv", task, True).labels]
    names = [line.split("\t")[1] for line in written.read_text().splitlines()[1:]]
    assert len(names) == len(gold) == 9_832 and set(names) <= set(task.label_names)
    assert scores["accuracy"] == pytest.approx(100 * sum(a == b for a, b in zip(names, gold)) / 9_832)


def saved_pair_student(folder: Path, task: str, num_labels: int, texts: list[str], sharp: bool = False) -> Path:
    """A tiny random siamese_bilstm_tiny saved as `run` saves models. `sharp`: its last layer 100 times larger and
    without a bias, so that its class follows the words (a random one gives nearly every pair the same class)."""
    vocab = Vocab.from_texts([texts])
    torch.manual_seed(0)
    model = STUDENTS.get("siamese_bilstm_tiny").build(BiLSTMSettings(hidden=4, fc=4), len(vocab), 5, num_labels)
    if sharp:
        with torch.no_grad():
            model.head[-1].weight.mul_(100)
            model.head[-1].bias.zero_()
    meta = {"student": "siamese_bilstm_tiny", "task": task, "num_labels": num_labels, "embed_dim": 5,
            "max_tokens": 64, "hidden": 4, "fc": 4, "multichannel": True, "dropout": 0.0}
    StudentPredictor(model, vocab, meta).save(folder)
    seal_model(folder, "student", "siamese_bilstm_tiny", task)
    return folder


@pytest.mark.slow
def test_predict_qqp_layout(tmp_path: Path, data_root: Path) -> None:
    """predict on QQP's own layout (id, qid1, qid2, question1, question2, is_duplicate; CSV-quoted)
    prints n, accuracy and F1, and writes one prediction per pair."""
    with gzip.open(data_root / "QQP" / "quora_pairs.tsv.gz", "rt") as f:
        head = "".join(islice(f, 13))  # header + 12 pairs, one of them CSV-quoted (id 8)
    (tmp_path / "qqp.tsv").write_text(head)
    model = saved_pair_student(tmp_path / "qqp_model", "qqp", 2, ["what is the best way to learn"])
    out = tmp_path / "pred.tsv"
    scores = last_json(harness("predict", "--model", str(model), "--input", str(tmp_path / "qqp.tsv"), "--output", str(out)))
    assert set(scores) == {"n", "accuracy", "f1"} and scores["n"] == 12
    lines = out.read_text().splitlines()
    assert len(lines) == 13
    # the printed scores are the written predictions' against the file's is_duplicate column, recomputed here
    gold = [int(row.split("\t")[-1]) for row in head.splitlines()[1:]]
    preds = [int(line.split("\t")[1]) for line in lines[1:]]
    assert scores["accuracy"] == pytest.approx(100 * sum(p == y for p, y in zip(preds, gold)) / 12)
    assert scores["f1"] == pytest.approx(100 * f1_score(gold, preds, zero_division=0))


@pytest.mark.slow
def test_predict_glue_and_mnli_layouts(tmp_path: Path) -> None:
    """predict on GLUE's 16-column MNLI file (gold_label) and on a sentence1/sentence2/label file
    with label names: n and accuracy, and the label names it writes: the name of the class the model's
    output is highest for, each recomputed here."""
    model = saved_pair_student(tmp_path / "mnli_model", "mnli", 3, ["the new rights are nice"], sharp=True)
    names = ("entailment", "neutral", "contradiction")  # MNLI's classes 0, 1, 2 (GLUE's and the hub's ids)
    rows = [line.split("\t") for line in (FIXTURES / "MNLI" / "dev_matched.tsv").read_text().splitlines()]
    assert (rows[0][0], rows[0][8], rows[0][9], rows[0][15]) == ("index", "sentence1", "sentence2", "gold_label")
    want = [names[k] for k in saved_outputs(model, [(r[8], r[9]) for r in rows[1:]]).argmax(1)]
    written = tmp_path / "glue.tsv"
    glue = last_json(harness("predict", "--model", str(model), "--input", str(FIXTURES / "MNLI" / "dev_matched.tsv"),
                             "--output", str(written)))
    assert written.read_text().splitlines() == ["index\tprediction", *(f"{r[0]}\t{w}" for r, w in zip(rows[1:], want))]
    assert glue == {"n": 5, "accuracy": pytest.approx(100 * sum(w == r[15] for r, w in zip(rows[1:], want)) / 5)}
    # A pair the model gives each class, labelled with it, and one more it calls a contradiction labelled
    # entailment: 3 of 4 right when each label name is read as its class; any other reading gets 2 wrong.
    pairs = [("The new rights are nice enough", "Everyone really likes the newest benefits"), ("the new rights", "are nice"),
             ("A man sleeps.", "A man is awake."), ("A dog runs.", "An animal moves.")]
    assert saved_outputs(model, pairs).argmax(1).tolist() == [0, 1, 2, 2]
    simple = tmp_path / "pairs.tsv"
    simple.write_text("sentence1\tsentence2\tlabel\n" + "".join(
        f"{a}\t{b}\t{label}\n" for (a, b), label in zip(pairs, ("entailment", "neutral", "contradiction", "entailment"))))
    written = tmp_path / "simple.tsv"
    assert last_json(harness("predict", "--model", str(model), "--input", str(simple), "--output", str(written))) == {
        "n": 4, "accuracy": 75.0}
    assert written.read_text().splitlines() == ["index\tprediction", "0\tentailment", "1\tneutral", "2\tcontradiction",
                                                "3\tcontradiction"]
