"""A reloaded model behaves as in its run: `predict` on the run's own dev file gives exactly the dev
scores in results.json, for the teacher and every student, on a single-sentence task (SST-2) and a
regression pair task (STS-B); the model cards record what that takes. And every row of a file gets a
prediction: empty texts are predicted (one warning), in the file's order, with the file's ids."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from harness.cli import main
from harness.core.errors import HarnessError
from harness.core.metrics import score_outputs
from harness.core.registry import STUDENTS, TASKS, TEACHERS
from harness.data.tasks import read_for_prediction, read_tsv
from harness.engine import manifest, model_card, ort
from harness.engine.predict import load_model, predict
from harness.engine.stages import seal_model
from harness.engine.wordmodel import StudentPredictor, Vocab, load_student
from students.bilstm import BiLSTMSettings

pytestmark = pytest.mark.usefixtures("one_thread")  # the run's thread count (measure.threads=1)

MAX_LENGTH = 16  # the teachers' wordpieces: far below the old reload default of 128, so a reload that ignores it differs
DEV_FILES = {"sst2": "SST-2/dev.tsv", "stsb": "STS-B/dev.tsv"}
SUITE = {
    "tasks": ["sst2", "stsb"], "students": ["bilstm", "bilstm_tiny"], "train_limit": 300, "dev_limit": 0, "seed": 13,
    "selection": {"limit": 100}, "teacher": {"name": "hf_tiny", "epochs": 1, "max_length": MAX_LENGTH},
    "augment": {"n_iter": 1}, "ablations": [],
    "student": {"epochs": 2, "hidden": 16, "fc": 16, "batch_size": 32},  # GloVe: SST-2's students learn a little
    "measure": {"enabled": False, "threads": 1},
    "per_task": {"stsb": {"students": ["siamese_bilstm", "siamese_bilstm_tiny"]}},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """A tiny real run (in this process, ~15 s): SST-2 and STS-B, the hf_tiny teacher at max length 16,
    two students each, every dev row scored."""
    return tiny_run(tmp_path_factory.mktemp("fidelity"), SUITE)


def tiny_run(tmp: Path, suite: dict) -> Path:
    """`harness run` of `suite` in this process; its output folder."""
    (tmp / "tiny.yaml").write_text(yaml.safe_dump(suite))
    assert main(["run", "--suite", str(tmp / "tiny.yaml"), "--out", str(tmp / "run"), "--cache-dir", str(tmp / "cache")]) == 0
    return tmp / "run"


def dev_scores(run_dir: Path) -> dict[tuple[str, str], dict]:
    """(task, model) -> its dev scores in results.json."""
    results = json.loads((run_dir / "results.json").read_text())
    return {(task, name): model["scores"]["dev"] for task, t in results["tasks"].items() for name, model in t["models"].items()}


def assert_predict_reproduces(run_dir: Path, data_root: Path, models: list[tuple[str, str]]) -> None:
    """predict on each task's dev file gives each model's dev scores in results.json exactly (equal floats)."""
    expected = dev_scores(run_dir)
    assert sorted(expected) == models
    for (task, name), want in expected.items():
        assert not any(math.isnan(v) for v in want.values()), (task, name, want)  # a constant model would prove little
        got = predict(run_dir / "models" / task / name, data_root / DEV_FILES[task], None)
        assert got.pop("n") == {"sst2": 872, "stsb": 1500}[task]
        assert got == want, (task, name)


def old_teacher_scores(run_dir: Path, data_root: Path, task: str, plugin: str) -> tuple[dict, np.ndarray]:
    """The run's teacher reloaded as predict did before cards (128 wordpieces): dev scores and logits."""
    split = read_tsv(data_root / DEV_FILES[task], TASKS.get(task), require_labels=True)
    old = TEACHERS.get(plugin).load(run_dir / "models" / task / "teacher", model_card.LEGACY_MAX_LENGTH)
    logits = old.logits(split.texts, model_card.SCORE_BATCH)
    return score_outputs(TASKS.get(task).metrics, split.labels, logits), logits


def test_predict_reproduces_every_dev_score(run_dir: Path, data_root: Path) -> None:
    """predict on the dev file gives each model's dev scores in results.json exactly, on SST-2 and STS-B."""
    assert_predict_reproduces(run_dir, data_root, [
        ("sst2", "bilstm"), ("sst2", "bilstm_tiny"), ("sst2", "teacher"),
        ("stsb", "siamese_bilstm"), ("stsb", "siamese_bilstm_tiny"), ("stsb", "teacher")])


def test_the_recorded_max_length_matters(run_dir: Path, data_root: Path) -> None:
    """The teacher reloaded with the old default (128 wordpieces) instead of its run's 16 gives other
    logits, and on STS-B (a correlation moves with any output) another dev score: the test above catches
    a reload that ignores the card. (hf_tiny predicts one class on SST-2 whatever its max length; the slow
    test below shows SST-2's accuracy moving with MiniLM.)"""
    expected = dev_scores(run_dir)
    scores, _ = old_teacher_scores(run_dir, data_root, "stsb", "hf_tiny")
    assert scores != expected[("stsb", "teacher")]
    _, logits = old_teacher_scores(run_dir, data_root, "sst2", "hf_tiny")
    split = read_tsv(data_root / DEV_FILES["sst2"], TASKS.get("sst2"), require_labels=True)
    teacher, _ = load_model(run_dir / "models" / "sst2" / "teacher")
    assert not np.array_equal(teacher.logits(split.texts, model_card.SCORE_BATCH), logits)  # sentences over 16 wordpieces


@pytest.mark.slow
def test_real_teacher_sst2(tmp_path: Path, data_root: Path) -> None:
    """With the real teacher (MiniLM, 1 epoch on 300 sentences at max length 16: ~62% dev, ~70 s on 2
    cores), predict reproduces SST-2's dev accuracy exactly, where a reload at 128 wordpieces scores otherwise."""
    suite = {**SUITE, "tasks": ["sst2"], "students": ["bilstm_tiny"], "per_task": {},
             "teacher": {"name": "hf", "checkpoint": "minilm", "epochs": 1, "max_length": MAX_LENGTH, "batch_size": 16}}
    run = tiny_run(tmp_path, suite)
    assert_predict_reproduces(run, data_root, [("sst2", "bilstm_tiny"), ("sst2", "teacher")])
    scores, _ = old_teacher_scores(run, data_root, "sst2", "hf")
    assert scores != dev_scores(run)[("sst2", "teacher")]


def warnings(capsys: pytest.CaptureFixture) -> list[str]:
    """The warning lines printed since the last call (transformers' weight-loading bar left out)."""
    return [line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith("Loading weights")]


def test_cards_record_the_run_settings(run_dir: Path) -> None:
    """Each model's harness.json records its task, labels, batch size and the settings it predicts with;
    the manifest covers it."""
    teacher = json.loads((run_dir / "models" / "stsb" / "teacher" / "harness.json").read_text())
    origins = teacher.pop("origins")  # how each module was loaded (entry point, or imported by this test first)
    assert teacher == {"format": 2, "kind": "teacher", "plugin": "hf_tiny", "task": "stsb", "num_labels": 1,
                       "label_names": [], "batch_size": 256, "max_length": MAX_LENGTH, "precision": "fp32"}
    assert origins["task"].startswith("harness.data.glue_tasks (") and origins["plugin"].startswith("teachers.hf (")
    student = json.loads((run_dir / "models" / "sst2" / "bilstm_tiny" / "harness.json").read_text())
    origins = student.pop("origins")
    assert student == {"format": 2, "kind": "student", "plugin": "bilstm_tiny", "task": "sst2", "num_labels": 2,
                       "label_names": [], "batch_size": 256, "max_tokens": 64}
    assert origins["task"].startswith("harness.data.tasks (") and origins["plugin"].startswith("students.bilstm (")
    for folder in (run_dir / "models").glob("*/*"):
        assert manifest.problem(folder) is None, folder
        predictor, card = load_model(folder)
        if card["kind"] == "teacher":
            assert predictor.max_length == MAX_LENGTH
        else:
            assert predictor.meta["max_tokens"] == card["max_tokens"]


def test_old_teacher_folder_loads_with_a_warning(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A teacher folder whose harness.json predates cards (kind, plugin, task) loads with the old 128 and
    one warning line saying so; a card whose task now has other labels is refused."""
    folder = tmp_path / "teacher"
    shutil.copytree(run_dir / "models" / "sst2" / "teacher", folder)
    model_card.write(folder, {"kind": "teacher", "plugin": "hf_tiny", "task": "sst2"})
    teacher, _ = load_model(folder)
    assert teacher.max_length == model_card.LEGACY_MAX_LENGTH
    warning = warnings(capsys)
    assert len(warning) == 1 and warning[0].startswith(f"warning: {folder}: harness.json does not record"), warning
    model_card.write(folder, {**model_card.read(folder), "num_labels": 3, "label_names": ["a", "b", "c"]})
    with pytest.raises(HarnessError, match="trained for task sst2 with 3 label"):
        load_model(folder)


def with_empty_rows(src: Path, dst: Path, empty: dict[int, int]) -> list[str]:
    """`src`'s header and first 20 rows, with text column `empty[row]` of those rows emptied (the second
    one all spaces); returns the rows' lines."""
    lines = src.read_text().splitlines()[:21]
    for k, (row, column) in enumerate(sorted(empty.items())):
        fields = lines[row + 1].split("\t")
        fields[column] = "   " if k else ""
        lines[row + 1] = "\t".join(fields)
    dst.write_text("\n".join(lines) + "\n")
    return lines[1:]


@pytest.mark.parametrize("task", ["sst2", "stsb"])
def test_empty_texts_are_predicted(task: str, run_dir: Path, data_root: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    """A file to predict with empty texts: training data refuses it as before; predict warns once (count
    and first line) and writes one prediction per row, in order, for the teacher and every student; a
    student reads an empty text as one unknown word."""
    columns = {"sst2": (0, 0), "stsb": (7, 8)}[task]  # the emptied text columns (sentence; sentence1, sentence2)
    path = tmp_path / "dev.tsv"
    with_empty_rows(data_root / DEV_FILES[task], path, {4: columns[0], 11: columns[1]})
    with pytest.raises(HarnessError, match=f"{path}:6: empty text in column"):
        read_tsv(path, TASKS.get(task), require_labels=True)
    split, lines = read_for_prediction(path, TASKS.get(task))
    assert len(split) == 20 and lines == [6, 13]
    for folder in sorted((run_dir / "models" / task).iterdir()):
        out = tmp_path / f"{folder.name}.tsv"
        scores = predict(folder, path, out)
        assert scores["n"] == 20
        assert warnings(capsys) == [f"warning: {path}: 2 rows with an empty text (first at line 6); predicted as given "
                            "(students read an empty text as one unknown word, the teacher as an empty string)"]
        rows = out.read_text().splitlines()
        assert rows[0] == "index\tprediction" and [r.split("\t")[0] for r in rows[1:]] == [str(i) for i in range(20)]
    student = load_student(run_dir / "models" / task / sorted(p.name for p in (run_dir / "models" / task).iterdir())[0])
    unknown = "zzqx-not-a-word"
    texts = [("",), (unknown,)] if task == "sst2" else [("", "a man"), (unknown, "a man"), ("a dog", "   ")]
    twins = [(unknown,), (unknown,)] if task == "sst2" else [(unknown, "a man"), (unknown, "a man"), ("a dog", unknown)]
    assert np.array_equal(student.logits(texts), student.logits(twins))


@pytest.mark.parametrize("arch", ["bilstm_tiny", "siamese_bilstm_tiny"])
def test_empty_text_same_in_onnx(arch: str, tmp_path: Path) -> None:
    """The ONNX export reads an empty text as PyTorch does (the same one unknown-word step): equal
    predictions, logits within the export check's tolerance."""
    pair = STUDENTS.get(arch).columns == 2
    vocab = Vocab.from_texts([["a good film", "a bad film about a dog"]])
    torch.manual_seed(0)
    model = STUDENTS.get(arch).build(BiLSTMSettings(hidden=8, fc=8), len(vocab), 6, 2)
    student = StudentPredictor(model, vocab, {"student": arch, "num_labels": 2, "max_tokens": 64})
    texts = [("", "a good film"), ("a bad film", ""), ("", " ")] if pair else [("",), ("  ",), ("a good film",)]
    onnx = ort.OrtStudent.from_predictor(student, ort.export_student(student, tmp_path / "s.onnx", texts))
    torch_logits, onnx_logits = student.logits(texts), onnx.logits(texts)
    assert np.abs(torch_logits - onnx_logits).max() <= 1e-5
    assert (torch_logits.argmax(1) == onnx_logits.argmax(1)).all()


def saved_pair_student(folder: Path) -> Path:
    """A tiny random QQP Siamese student saved as `run` saves models, with the old three-field card."""
    vocab = Vocab.from_texts([["how do i learn python", "what is the best way"]])
    torch.manual_seed(0)
    model = STUDENTS.get("siamese_bilstm_tiny").build(BiLSTMSettings(hidden=4, fc=4), len(vocab), 5, 2)
    meta = {"student": "siamese_bilstm_tiny", "task": "qqp", "num_labels": 2, "embed_dim": 5, "max_tokens": 64,
            "hidden": 4, "fc": 4, "multichannel": True, "dropout": 0.0}
    StudentPredictor(model, vocab, meta).save(folder)
    seal_model(folder, "student", "siamese_bilstm_tiny", "qqp")
    return folder


def test_qqp_test_layout_keeps_ids_and_order(data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """QQP's test layout (id, question1, question2; unlabelled; CSV-quoted): rows 5,140-5,160 of the shared
    test.tsv, which hold its pair with an empty question (line 5,154): one prediction per row, with
    the file's ids, in its order; one warning; a folder with the old card loads without one."""
    lines = (data_root / "QQP" / "test.tsv").read_text().splitlines()
    path = tmp_path / "test.tsv"
    path.write_text("\n".join([lines[0], *lines[5139:5160]]) + "\n")
    out = tmp_path / "QQP.tsv"
    assert predict(saved_pair_student(tmp_path / "model"), path, out) is None
    assert warnings(capsys) == [
        f"warning: {path}: 1 row with an empty text (first at line 16); predicted as given (students read an "
        "empty text as one unknown word, the teacher as an empty string)"]
    rows = [r.split("\t") for r in out.read_text().splitlines()]
    assert rows[0] == ["index", "prediction"] and len(rows) == 22
    assert [r[0] for r in rows[1:]] == [line.split("\t")[0] for line in lines[5139:5160]]
    assert {r[1] for r in rows[1:]} <= {"0", "1"}
