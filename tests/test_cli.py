"""The command line: user errors are one line on stderr with exit status 2, never a traceback."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
from pathlib import Path

import pytest
import torch
from cli_runner import harness

from harness import cli
from harness.core.registry import STUDENTS
from harness.engine import model_card
from harness.engine.stages import seal_model
from harness.engine.wordmodel import StudentPredictor, Vocab
from students.bilstm import BiLSTMSettings


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit status 2 and exactly one stderr line, `error: ...`, containing every needle."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"stderr should be one line, got {lines!r}"
    assert lines[0].startswith("error:")
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


@pytest.fixture
def student_folder(tmp_path: Path) -> Path:
    """A tiny saved student laid out like <run>/models/sst2/bilstm_tiny."""
    vocab = Vocab.from_texts([["a good film", "a bad film"]])
    torch.manual_seed(0)
    model = STUDENTS.get("bilstm_tiny").build(BiLSTMSettings(hidden=4, fc=4), len(vocab), 5, 2)
    meta = {"student": "bilstm_tiny", "task": "sst2", "num_labels": 2, "embed_dim": 5, "max_tokens": 64,
            "hidden": 4, "fc": 4, "multichannel": True, "dropout": 0.0}
    folder = tmp_path / "bilstm_tiny"
    StudentPredictor(model, vocab, meta).save(folder)
    seal_model(folder, "student", "bilstm_tiny", "sst2")
    return folder


def test_unknown_student() -> None:
    """A misspelt student fails before any work, suggesting the right name."""
    assert_one_line_error(harness("run", "--students", "bilstn", "--preset", "smoke"), "did you mean", "'bilstm'")


def test_wrong_type_set() -> None:
    """--set with a value of the wrong type names the field."""
    assert_one_line_error(harness("run", "--set", "student.hidden=abc"), "hidden", "abc")


@pytest.mark.slow
def test_meaningless_setting() -> None:
    """--set with a value that would make its setting meaningless is refused with the smallest sensible
    value, before any work (the teacher would otherwise see only [CLS] and the run report scores)."""
    assert_one_line_error(harness("run", "--preset", "smoke", "--set", "teacher.max_length=1"),
                          "teacher.max_length=1: must be at least 8 (a [CLS] and [SEP] plus a few tokens")


@pytest.mark.slow
def test_predict_missing_column(student_folder: Path, tmp_path: Path) -> None:
    """predict on a TSV without the task's text column names the file and the column."""
    bad = tmp_path / "bad.tsv"
    bad.write_text("text\tlabel\nhello world\t1\n")
    assert_one_line_error(harness("predict", "--model", str(student_folder), "--input", str(bad)), str(bad), "sentence")


def test_predict_scores_and_writes(student_folder: Path, tmp_path: Path) -> None:
    """predict on a labelled TSV prints JSON scores and writes one prediction per row."""
    good, out = tmp_path / "good.tsv", tmp_path / "pred.tsv"
    good.write_text("sentence\tlabel\na good film\t1\na bad film\t0\nunknown words\t1\n")
    proc = harness("predict", "--model", str(student_folder), "--input", str(good), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout.strip().splitlines()[-1])
    lines = out.read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 4
    assert all(line.split("\t")[1] in ("0", "1") for line in lines[1:])
    # the printed accuracy is the written predictions' agreement with the file's labels (1, 0, 1), counted here
    right = sum(line.split("\t")[1] == gold for line, gold in zip(lines[1:], ("1", "0", "1")))
    assert scores == {"n": 3, "accuracy": pytest.approx(100 * right / 3)}


def test_predict_text_gives_the_files_prediction(student_folder: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """`predict --text` prints one JSON line per text, with the prediction the same rows get from a file and the
    model's outputs; a text with the wrong number of columns, or --output beside --text, is a one-line error."""
    texts = ["a good film", "a bad film", "unknown words"]
    good, out = tmp_path / "good.tsv", tmp_path / "pred.tsv"
    good.write_text("sentence\n" + "\n".join(texts) + "\n")
    assert cli.main(["predict", "--model", str(student_folder), "--input", str(good), "--output", str(out)]) == 0
    from_file = [line.split("\t")[1] for line in out.read_text().splitlines()[1:]]
    capsys.readouterr()
    assert cli.main(["predict", "--model", str(student_folder), *[a for t in texts for a in ("--text", t)]]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == texts and [str(r["prediction"]) for r in rows] == from_file
    assert all(len(r["outputs"]) == 2 and r["prediction"] == max((0, 1), key=r["outputs"].__getitem__) for r in rows)
    assert cli.main(["predict", "--model", str(student_folder), "--text", "a good\tfilm"]) == 2
    assert capsys.readouterr().err.strip() == "error: --text 'a good\\tfilm': task sst2 takes one text, this has 2"
    assert cli.main(["predict", "--model", str(student_folder), "--text", "a", "--output", str(out)]) == 2
    assert "use it with --input, not --text" in capsys.readouterr().err


def test_predict_names_the_plugin_a_model_needs(student_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A model trained on a task (or by a plugin) not registered here is refused with where it came from when it
    trained, read from its card, and what to load; a card from before origins were recorded still gets the hint."""
    card = json.loads((student_folder / "harness.json").read_text())
    model_card.write(student_folder, {**card, "task": "toy", "origins": {"task": "toy_task (plugins=)"}})
    assert cli.main(["predict", "--model", str(student_folder), "--text", "a good film"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {student_folder}: task 'toy' is not registered here; it came from toy_task (plugins=) when the model "
        "trained: load it with --plugins MODULE (plugins= in Python) or install the package that registers it")
    model_card.write(student_folder, {**card, "plugin": "bow"})
    assert cli.main(["predict", "--model", str(student_folder), "--text", "a good film"]) == 2
    assert "student plugin 'bow' is not registered here: load it with --plugins MODULE" in capsys.readouterr().err


@pytest.mark.slow
def test_ls_students() -> None:
    """`ls students` prints the registered students, one per line."""
    proc = harness("ls", "students")
    assert proc.returncode == 0, proc.stderr
    assert {"bilstm", "bilstm_soft", "bilstm_tiny"} <= set(proc.stdout.split())


def test_version_names_the_package_and_commit(capsys: pytest.CaptureFixture[str]) -> None:
    """`--version` prints the installed version and this checkout's commit, and exits 0 without a command."""
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"kd-harness {importlib.metadata.version('kd-harness')}, commit ")
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", out.rsplit(" ", 1)[1]), out


def test_ls_suites_names_their_presets(capsys: pytest.CaptureFixture[str]) -> None:
    """`ls suites` names each shipped suite with its presets (read from the YAML) and its description."""
    assert cli.main(["ls", "suites"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "glue  presets: smoke, quick, zoo, full (README, Presets)"
    assert lines[1].startswith("  Tang et al. (2019) on GLUE: fine-tune the teacher")


@pytest.mark.slow
def test_missing_data_dir(tmp_path: Path) -> None:
    """`run --data-dir` naming no folder: one line naming the option and the path, before any work."""
    missing = tmp_path / "no-such-dir"
    proc = harness("run", "--preset", "smoke", "--data-dir", str(missing), "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, "--data-dir", str(missing))
    assert not (tmp_path / "out" / "results.json").exists()
