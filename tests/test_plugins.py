"""Plugins from outside the repo (issue 21): the README's example student, installed as a package of its
own, runs end to end; `--plugins` modules register and say where they came from; a plugin that fails to
import is one line; and the engine names no student.

`pytest -m slow -k external` selects the end-to-end tests (slow tier): the README's student in a smoke run
of SST-2 (about 3 minutes), and a task of its own with a local teacher folder (about 30 s).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from smoke_cache import seed_cache

from harness import api
from harness.core import metrics, plugins
from harness.core.config import TeacherConfig
from harness.core.errors import HarnessError
from harness.core.registry import STUDENTS, TASKS, TEACHERS
from harness.engine import ort
from harness.engine.wordmodel import StudentPredictor, Vocab
from harness.results.report import PAPER_COLUMN

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Add your own student, teacher or task"


def readme_example() -> dict[str, str]:
    """The README section's fenced blocks, by the file name on the line before each (`my-bow/my_bow.py`),
    and `commands` for the bash block."""
    text = ROOT.joinpath("README.md").read_text()
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    out = {}
    for name, lang, body in re.findall(r"(?:`([^`\n]+)`:\n\n)?```(\w+)\n(.*?)```", section, flags=re.S):
        out[name or ("commands" if lang == "bash" else lang)] = body
    assert {"my-bow/my_bow.py", "my-bow/pyproject.toml", "commands"} <= set(out), sorted(out)
    return out


def write_package(folder: Path) -> dict[str, str]:
    """The README's package, written under `folder`."""
    example = readme_example()
    for name in ("my-bow/my_bow.py", "my-bow/pyproject.toml"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(example[name])
    return example


@pytest.fixture()
def own_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Registrations made by a test stay in it (the registries are process-wide)."""
    for registry in (STUDENTS, TASKS):
        monkeypatch.setattr(registry, "_items", dict(registry._items))
        monkeypatch.setattr(registry, "_origins", dict(registry._origins))
    monkeypatch.setattr(plugins, "_loaded", set(plugins._loaded))
    monkeypatch.setattr(metrics, "METRICS", dict(metrics.METRICS))
    yield
    for module in ("my_bow", "toy_task"):
        sys.modules.pop(module, None)


def test_plugins_module_registers_and_names_its_origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      own_registry: None) -> None:
    """A module named with --plugins (here: harness.api's `plugins=`) registers its students, and `ls`
    says they came from it; the settings dataclass is its own (a typo of its field gets did-you-mean)."""
    write_package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "my-bow"))
    listed = api.ls("students", plugins=["my_bow"])
    assert listed["bow_pair_soft"] == "my_bow (plugins=)"
    assert listed["bilstm"].startswith("students.bilstm (")  # (an entry point, when nothing imported it before)
    with pytest.raises(HarnessError, match="'fcc'; did you mean 'fc'"):
        api.configure("glue", "smoke", tasks=["sst2"], students=["bow", "bow_soft"], overrides={"student.fcc": 3},
                      plugins=["my_bow"])
    with pytest.raises(HarnessError, match=r"--set student.hidden: none of this run's students \(bow, bow_soft\) has it"):
        api.configure("glue", "smoke", tasks=["sst2"], students=["bow", "bow_soft"],
                      overrides={"student.hidden": 3, "ablations": ""}, plugins=["my_bow"])  # it must reach a student
    cfg, _ = api.configure("glue", "smoke", tasks=["sst2"], students=["bow", "bow_soft"], overrides={"student.fc": 8,
                           "ablations": ""}, plugins=["my_bow"])
    from harness.core.variants import student_jobs

    assert [(j.name, j.settings.fc) for j in student_jobs(cfg.for_task("sst2"), 1)] == [("bow", 8), ("bow_soft", 8)]


def test_a_suite_names_its_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_registry: None) -> None:
    """A suite's `plugins:` are imported before its students are checked: a suite of the README's student."""
    write_package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "my-bow"))
    suite = tmp_path / "bow.yaml"
    suite.write_text("plugins: [my_bow]\ntasks: [sst2, stsb]\nstudents: [bow, bow_soft]\nstudent: {fc: 16}\n"
                     "per_task:\n  stsb: {students: [bow_pair, bow_pair_soft]}\n")
    cfg, info = api.configure(str(suite))
    assert cfg.plugins == ("my_bow",) and api.ls("students")["bow"] == "my_bow (suite bow: plugins)"
    from harness.core.variants import student_jobs

    assert [(j.name, j.settings.fc) for j in student_jobs(cfg.for_task("stsb"), 2)] == [("bow_pair", 16), ("bow_pair_soft", 16)]


def test_the_api_checks_before_any_work(tmp_path: Path) -> None:
    """harness.run refuses a student that does not fit its task before the teacher trains: nothing is written."""
    with pytest.raises(HarnessError, match="student siamese_bilstm reads 2 sentence"):
        api.run("glue", "smoke", tasks=["sst2"], students=["siamese_bilstm"], out=tmp_path / "out", cache_dir=tmp_path / "c")
    assert list(tmp_path.iterdir()) == []


def test_a_plugin_that_fails_to_import_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   own_registry: None) -> None:
    """A --plugins module that raises on import is a HarnessError naming it and the cause."""
    (tmp_path / "broken_plugin.py").write_text("import no_such_package_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(HarnessError) as err:
        plugins.load_modules(["broken_plugin"], "--plugins")
    assert str(err.value) == ("--plugins: plugin module 'broken_plugin' failed to import: ModuleNotFoundError: "
                              "No module named 'no_such_package_here'")
    with pytest.raises(HarnessError, match="'not_a_module_anywhere' failed to import"):
        plugins.load_modules(["not_a_module_anywhere"], "--plugins")


def test_the_external_pair_student_exports_and_quantises(tmp_path: Path, own_registry: None) -> None:
    """The README's bag-of-embeddings student, pair form: exported to ONNX as it is (no twin), checked
    against PyTorch by the engine, and its int8 form close to it."""
    write_package(tmp_path)
    spec = importlib.util.spec_from_file_location("my_bow_probe", tmp_path / "my-bow" / "my_bow.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # registers bow, bow_soft, bow_pair, bow_pair_soft
    pairs = [(f"a film number {i} was good", f"the film {i} was {'bad' if i % 2 else 'fine'}") for i in range(40)]
    vocab = Vocab.from_texts([[p[0] for p in pairs], [p[1] for p in pairs]])
    model = STUDENTS.get("bow_pair").build(module.BowSettings(fc=8), len(vocab), 6, 3)
    model.init_embeddings(np.random.default_rng(0).normal(size=(len(vocab), 6)).astype(np.float32))
    student = StudentPredictor(model, vocab, {"student": "bow_pair", "task": "mnli", "num_labels": 3, "embed_dim": 6,
                                              "max_tokens": 64, "settings": {"fc": 8}})
    exported = ort.export_student(student, tmp_path / "pair.onnx", pairs)
    int8 = ort.quantize_int8(exported, tmp_path / "pair.int8.onnx")
    want = student.logits(pairs, 16)
    np.testing.assert_allclose(ort.OrtStudent.from_predictor(student, exported).logits(pairs, 16), want, atol=1e-4)
    assert np.abs(ort.OrtStudent.from_predictor(student, int8).logits(pairs, 16) - want).max() < 0.1


TOY_TASK = '''"""A task plugin: single sentences from two TSV files in its own folder, scored by a metric of its own."""
from pathlib import Path

from sklearn.metrics import balanced_accuracy_score

from harness import TASKS, Task, register_metric

register_metric("balanced_accuracy", balanced_accuracy_score, higher_is_better=True)
TASKS.add("toy", Task(name="toy", glue_dir=str(Path(__file__).parent / "toy"), hub=("", ""), text_columns=("sentence",),
                      label_column="label", num_labels=2, metrics=("balanced_accuracy", "accuracy")))
'''


@pytest.mark.slow
def test_an_external_task_and_a_local_teacher_folder(tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture, own_registry: None) -> None:
    """A task from TSV files in a folder of its own, with a metric it registers (its direction followed in
    checkpoint choice), runs end to end with a teacher from a local transformers folder; the teacher's key
    follows the folder's contents: changed in place, the teacher is trained again."""
    (tmp_path / "toy").mkdir()
    lines = (data_root / "SST-2" / "train.tsv").read_text().splitlines()
    (tmp_path / "toy" / "train.tsv").write_text("\n".join(lines[:401]) + "\n")
    (tmp_path / "toy" / "dev.tsv").write_text("\n".join([lines[0], *lines[401:521]]) + "\n")
    (tmp_path / "toy_task.py").write_text(TOY_TASK)
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = tmp_path / "my-teacher"
    teacher = TEACHERS.get("hf_tiny").create(TeacherConfig(), 2)
    teacher.save(folder)
    overrides = {"teacher.checkpoint": str(folder), "teacher.epochs": 1, "augment.n_iter": 1, "student.epochs": 2,
                 "measure.enabled": False, "ablations": "", "selection.limit": 40}

    def run(out: str) -> tuple[dict, str]:
        results = api.run("glue", "smoke", tasks=["toy"], students=["bilstm", "bilstm_soft"], overrides=overrides,
                          out=tmp_path / out, cache_dir=tmp_path / "cache", plugins=["toy_task"])
        return results["tasks"]["toy"], capsys.readouterr().out

    first, log = run("a")
    assert api.ls("tasks")["toy"] == "toy_task (plugins=)"
    assert "[teacher] computing" in log and first["metrics"] == ["balanced_accuracy", "accuracy"]
    for name in ("teacher", "bilstm", "bilstm_soft"):
        assert set(first["models"][name]["scores"]["dev"]) == {"balanced_accuracy", "accuracy"}
    again, log = run("b")
    assert "[teacher] cached" in log and again["models"]["teacher"]["scores"] == first["models"]["teacher"]["scores"]
    with torch.no_grad():  # the same folder, other weights: another teacher
        teacher.model.classifier.weight.add_(1.0)
    teacher.save(folder)
    _, log = run("c")
    assert "[teacher] computing" in log


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of every row of the markdown tables in `markdown`, their headers included (not the rules below them)."""
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in markdown.splitlines()
            if line.startswith("|") and not line.startswith("|:")]


def string_literals(path: Path) -> list[tuple[int, str]]:
    """Every string constant of a Python file but its docstrings, with its line."""
    tree = ast.parse(path.read_text())
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs]


def test_the_engine_names_no_student() -> None:
    """No string literal in harness/**/*.py names a registered student (comments and docstrings may): the
    engine takes every student from the registry, the suites and the results."""
    pattern = re.compile("|".join(sorted((re.escape(n) for n in STUDENTS.names()), key=len, reverse=True)))
    assert pattern.search("siamese_bilstm_soft") and pattern.search("bilstm")  # the check can fail
    found = [f"{path.relative_to(ROOT)}:{line}: {value[:60]!r}" for path in sorted((ROOT / "harness").rglob("*.py"))
             for line, value in string_literals(path) if pattern.search(value)]
    assert not found, "\n".join(found)


@pytest.mark.slow
def test_external_student_end_to_end(tmp_path: Path, smoke_sst2_cache: Path) -> None:
    """The README's example as a user runs it, outside the repo: its package installed (here into a folder
    of its own, PIP_TARGET, so the test leaves the environment as it was), the smoke preset's SST-2 run with
    its students. They get scores, ONNX and int8 timings checked against PyTorch, and rows in the report,
    the GLUE table and `compare`. The run's cache (runs/cache, the default) starts with the smoke teacher and
    transfer set the session computed once (conftest.smoke_sst2_cache)."""
    example = write_package(tmp_path)
    seed_cache(smoke_sst2_cache, tmp_path / "runs" / "cache")
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    site = tmp_path / "site"
    env = {**os.environ, "PIP_TARGET": str(site), "PYTHONPATH": str(site), "HARNESS_DATA": str(ROOT.parent / "shared" / "data"),
           "PIP_NO_INDEX": "1"}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", example["commands"]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"^bow_soft +from my_bow \(entry point kd_harness\.students:bow of my-bow\)$", proc.stdout, re.M)
    results = json.loads((tmp_path / "runs" / "bow" / "results.json").read_text())
    models = results["tasks"]["sst2"]["models"]
    dev = [line.split("\t") for line in (ROOT.parent / "shared" / "data" / "SST-2" / "dev.tsv").read_text().splitlines()[1:]]
    accuracy = {}  # each student's dev accuracy, recomputed from the predictions its saved folder writes
    for name in ("bow", "bow_soft"):
        written = tmp_path / f"{name}.tsv"
        predict = subprocess.run([sys.executable, "-m", "harness", "predict", "--model", f"runs/bow/models/sst2/{name}",
                                  "--input", str(ROOT.parent / "shared" / "data" / "SST-2" / "dev.tsv"), "--output",
                                  str(written)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert predict.returncode == 0, predict.stderr
        preds = [line.split("\t") for line in written.read_text().splitlines()[1:]]
        assert [i for i, _ in preds] == [str(i) for i in range(872)] and len(dev) == 872
        accuracy[name] = 100 * sum(p == label for (_, p), (_, label) in zip(preds, dev)) / 872
    assert 50 < accuracy["bow"] and 50 < accuracy["bow_soft"], accuracy  # both learned something: better than chance
    for name, role in (("bow", "label-only"), ("bow_soft", "distilled")):
        model = models[name]
        assert model["role"] == role
        assert model["scores"]["dev"]["accuracy"] == pytest.approx(accuracy[name], abs=0.005), name
        backends = {(s["backend"], s["dtype"]): s for s in model["speed"]}
        assert {("torch", "fp32"), ("onnx", "fp32"), ("onnx-int8", "int8")} <= set(backends)
        assert abs(backends["onnx", "fp32"]["scores"]["accuracy"] - model["scores"]["dev"]["accuracy"]) < 0.2
        assert backends["onnx-int8", "int8"]["offline"]["sentences_per_s"] > 0
    saved = json.loads((tmp_path / "runs" / "bow" / "models" / "sst2" / "bow_soft" / "config.json").read_text())
    assert saved["settings"] == {"fc": 64}
    report = (tmp_path / "runs" / "bow" / "report.md").read_text()
    shown = {name: f"{accuracy[name]:.2f}" for name in accuracy}
    dev_cell = shown  # one seed: its paired test is over one training run's examples and never earns a † (significance.py)
    rows = table_rows(report)
    assert ["label-only student (bow)", dev_cell["bow"], shown["bow"]] in rows  # the GLUE table: SST-2, the average
    assert ["distilled student (bow_soft)", dev_cell["bow_soft"], shown["bow_soft"]] in rows
    start = rows.index(["model", "dev accuracy (ours)", "selection accuracy (ours)", PAPER_COLUMN])  # the scores table
    selection = {name: f"{models[name]['scores']['selection']['accuracy']:.2f}" for name in shown}
    assert rows[start + 1][0] == "teacher" and rows[start + 2 : start + 4] == [
        ["bow", dev_cell["bow"], selection["bow"], "86.7 (BiLSTM)"],
        ["bow_soft", dev_cell["bow_soft"], selection["bow_soft"], "90.7 (BiLSTM_SOFT)"]]
    compare = subprocess.run([sys.executable, "-m", "harness", "compare", "runs/bow", "runs/bow"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
    assert compare.returncode == 0, compare.stderr
    compared = table_rows(compare.stdout)
    for task, model, score, name in (("sst2", "bow", "dev accuracy", "bow"), ("sst2", "bow_soft", "dev accuracy", "bow_soft"),
                                     ("GLUE", "label-only", "average (1 task: sst2)", "bow"),
                                     ("GLUE", "distilled", "average (1 task: sst2)", "bow_soft")):
        row = next(row for row in compared if row[:3] == [task, model, score])
        assert row[3] == shown[name] and row[4].startswith("+0.00"), row
