"""Transfer sets that outlive a run (export, then import with no teacher) and teacher ensembles, on the
tiny pipeline (random 2-layer teacher, 300 SST-2 sentences)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from harness.cli import main
from harness.core.config import RunConfig, TeacherConfig, TransferConfig
from harness.core.errors import HarnessError
from harness.core.registry import TASKS, TEACHERS
from harness.data.split import selection_split
from harness.data.tasks import REPO_ROOT, load_task
from harness.engine import stages, transfer
from harness.engine.cache import Store
from teachers.hf import HFTeacher

SETS = ["teacher.name=hf_tiny", "train_limit=300", "dev_limit=100", "augment.n_iter=1", "measure.enabled=false",
        "measure.threads=1", "ablations=", "selection.limit=100"]


def run(tmp: Path, data: Path, name: str, cache: str, *extra: str, code: int = 0) -> dict | None:
    """`harness run` in this process (so a test can booby-trap the teacher), on the tiny settings; its results, or
    None when it is to fail with exit status `code`."""
    args = ["run", "--preset", "smoke", "--tasks", "sst2", "--students", "bilstm,bilstm_tiny", "--data-dir", str(data),
            *[a for s in [*SETS, *extra] for a in ("--set", s)], "--out", str(tmp / name), "--cache-dir", str(tmp / cache)]
    assert main(args) == code
    return json.loads((tmp / name / "results.json").read_text())["tasks"]["sst2"] if code == 0 else None


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> tuple[Path, dict]:
    """A tiny run and its exported transfer set."""
    tmp = tmp_path_factory.mktemp("transfer")
    task = run(tmp, data_root, "source", "cache")
    assert main(["export-transfer", str(tmp / "source"), str(tmp / "export"), "--cache-dir", str(tmp / "cache")]) == 0
    return tmp, task


def booby_trap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every way into teacher code fail loudly."""
    def ran(*args, **kwargs):
        raise AssertionError("teacher code ran")

    for name in ("teacher_stage", "label_stage", "augment_stage", "load_teacher"):
        monkeypatch.setattr(stages, name, ran)
    for name in ("load", "from_checkpoint", "logits", "finetune"):
        monkeypatch.setattr(HFTeacher, name, ran)
    for name in ("hf", "hf_tiny"):
        monkeypatch.setattr(TEACHERS.get(name), "create", ran)
        monkeypatch.setattr(TEACHERS.get(name), "load", ran)


def test_export_files(exported: tuple[Path, dict]) -> None:
    """The export holds every row with its logits, in the run's order, and `datasets` reads it."""
    import datasets

    tmp, task = exported
    meta = json.loads((tmp / "export" / transfer.META).read_text())
    assert (meta["task"], meta["num_labels"], meta["rows"]) == ("sst2", 2, task["stages"]["augment"]["rows"])
    assert meta["originals"] == 300 and meta["synthetic"] == meta["rows"] - 300 > 0
    assert meta["cache_keys"]["label"] == task["stages"]["label"]["key"]
    assert meta["teacher"]["scores"] == task["models"]["teacher"]["scores"] and "dev" in meta["teacher"]["scores"]
    rows = datasets.load_dataset("parquet", data_files=str(tmp / "export" / transfer.ROWS), split="train")
    assert rows.num_rows == meta["rows"] and set(rows.column_names) == {"text_a", "label", "synthetic", "logits"}
    logits = np.load(Store(tmp / "cache").path("label", task["stages"]["label"]["key"]) / "logits.npy")
    assert np.array_equal(np.array(rows["logits"], dtype=np.float32), logits)
    assert rows[0]["label"] in (0, 1) and rows[meta["rows"] - 1]["label"] is None and rows[meta["rows"] - 1]["synthetic"]
    assert not list(tmp.glob(".export*")) and not list(tmp.glob("export/*.tmp"))


@pytest.mark.usefixtures("one_thread")
def test_import_trains_the_same_students_without_a_teacher(exported: tuple[Path, dict], data_root: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Students trained from the imported set in a fresh cache equal the exporting run's (same seed:
    same curves, scores and weights), and no teacher code runs."""
    tmp, source = exported
    booby_trap(monkeypatch)
    imported = run(tmp, data_root, "imported", "cache-import", f"transfer.source={tmp / 'export'}")
    assert "teacher" not in imported["models"] and set(imported["stages"]) == {"import", "bilstm", "bilstm_tiny"}
    for name in ("bilstm", "bilstm_tiny"):
        assert imported["models"][name]["scores"] == source["models"][name]["scores"], name
        curves = [[(h["epoch"], h["select"]) for h in task["stages"][name]["history"]] for task in (imported, source)]
        assert curves[0] == curves[1], name
        weights = [json.loads((tmp / run_name / "models" / "sst2" / name / "manifest.json").read_text())
                   ["files"]["model.safetensors"] for run_name in ("source", "imported")]
        assert weights[0] == weights[1], name
    assert imported["stages"]["bilstm_tiny"]["embedding"] == source["stages"]["bilstm_tiny"]["embedding"]
    report = (tmp / "imported" / "report.md").read_text()
    assert "No teacher ran here" in report and "imported from" in report


def test_import_refuses_what_does_not_fit(exported: tuple[Path, dict], tmp_path: Path) -> None:
    """Another task, another label count, a damaged file, a missing folder: one clear error each."""
    tmp, _ = exported
    sst2, qqp = TASKS.get("sst2"), TASKS.get("qqp")
    with pytest.raises(HarnessError, match="a transfer set of task sst2, not qqp"):
        transfer.read_metadata(tmp / "export", qqp)
    with pytest.raises(HarnessError, match="no metadata.json"):
        transfer.read_metadata(tmp_path, sst2)
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in (transfer.ROWS, transfer.VECTORS, transfer.META):
        (copy / name).write_bytes((tmp / "export" / name).read_bytes())
    meta = json.loads((copy / transfer.META).read_text())
    (copy / transfer.META).write_text(json.dumps({**meta, "num_labels": 3}))
    with pytest.raises(HarnessError, match="3 teacher output"):
        transfer.read_metadata(copy, sst2)
    (copy / transfer.META).write_text(json.dumps(meta))
    data = bytearray((copy / transfer.ROWS).read_bytes())
    data[len(data) // 2] ^= 1
    (copy / transfer.ROWS).write_bytes(bytes(data))
    with pytest.raises(HarnessError, match="transfer.parquet does not match its size and sha256"):
        transfer.read_metadata(copy, sst2)
    with pytest.raises(HarnessError, match="already exists"):
        transfer.export(tmp / "source", None, tmp / "export", tmp / "cache")
    with pytest.raises(HarnessError, match="no task 'qqp'"):
        transfer.export(tmp / "source", "qqp", tmp_path / "new", tmp / "cache")
    with pytest.raises(HarnessError, match="not in the cache"):
        transfer.export(tmp / "source", "sst2", tmp_path / "new", tmp_path / "empty-cache")
    assert not (tmp_path / "new").exists()


@pytest.mark.usefixtures("one_thread")
def test_tree_transfer_recuts_an_export_for_the_tree_split(exported: tuple[Path, dict], data_root: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    """scripts/tree_transfer.py: the export less every original the tree split holds out and every synthetic row made
    from one (the augmentation made again, row for row); a run with `selection.unit=tree` refuses the export and
    trains from the re-cut one, with no teacher, its results saying what the teacher trained on."""
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    import tree_transfer

    tmp, _ = exported
    run(tmp_path, data_root, "refused", "cache", f"transfer.source={tmp / 'export'}", "selection.unit=tree", code=2)
    assert "selection examples are original rows of the imported transfer set" in capsys.readouterr().err
    tree_transfer.main([str(tmp / "export"), str(tmp_path / "tree"), "--data-dir", str(data_root)])
    old, new = (pq.read_table(folder / transfer.ROWS) for folder in (tmp / "export", tmp_path / "tree"))
    meta = json.loads((tmp_path / "tree" / transfer.META).read_text())
    held, _ = selection_split(load_task("sst2", data_root)["train"], 0.05, 100, unit="tree")
    originals = [(t,) for t in old.column("text_a").to_pylist()[: json.loads((tmp / "export" / transfer.META).read_text())
                                                                 ["originals"]]]
    dropped = transfer.overlap(originals, held.texts)
    assert dropped > 0 and meta["derived"]["left_out"]["originals"] == dropped
    assert new.num_rows == meta["rows"] == old.num_rows - dropped - meta["derived"]["left_out"]["synthetic"]
    assert transfer.overlap([(t,) for t in new.column("text_a").to_pylist()[: meta["originals"]]], held.texts) == 0
    assert set(new.column("text_a").to_pylist()) < set(old.column("text_a").to_pylist())
    assert meta["selection"]["unit"] == "tree" and f"of the {len(held):,} examples" in meta["derived"]["teacher"]
    with pytest.raises(SystemExit, match="already exists"):
        tree_transfer.main([str(tmp / "export"), str(tmp_path / "tree"), "--data-dir", str(data_root)])

    booby_trap(monkeypatch)
    task = run(tmp_path, data_root, "tree-run", "cache-tree", f"transfer.source={tmp_path / 'tree'}",
               "selection.unit=tree")
    assert task["stages"]["import"]["derived"] == meta["derived"] and task["data"]["selection"]["unit"] == "tree"
    assert task["data"]["selection"]["inside_train"]["selection"] == 0


def test_overlap_compares_tokenised_originals() -> None:
    """Originals are stored tokenised; the selection split's raw texts are compared the same way."""
    assert transfer.overlap([("it 's good",), ("bad",)], [("it's good",), ("fine",)]) == 1
    assert transfer.overlap([("a", "b c")], [("a", "b c"), ("a", "b")]) == 1


def test_members_are_checked() -> None:
    with pytest.raises(HarnessError, match="at least 2 members"):
        TeacherConfig(members=({"seed": 1},))
    with pytest.raises(HarnessError, match=r"teacher.members\[2\].*unknown setting.*'lrr'"):
        TeacherConfig(members=({}, {"lrr": 1e-4}))
    with pytest.raises(HarnessError, match=r"teacher.members\[1\]: seed must be an integer"):
        TeacherConfig(members=({"seed": "x"}, {}))
    with pytest.raises(HarnessError, match="with no teacher: drop teacher.members"):
        RunConfig(teacher=TeacherConfig(members=({}, {"seed": 14})), transfer=TransferConfig(source="sst2-transfer"))


@pytest.mark.usefixtures("one_thread")
def test_ensemble(exported: tuple[Path, dict], data_root: Path) -> None:
    """Two members: the first is the single run's teacher (reused from the cache); the transfer set's
    logits are the members' mean; the report lists each member's scores and the ensemble's."""
    tmp, single = exported
    task = run(tmp, data_root, "ensemble", "cache", "teacher.members=[{seed: 13}, {seed: 14, lr: 1.0e-3}]")
    st = task["stages"]
    assert st["teacher (member 1)"]["cached"] and st["teacher (member 1)"]["key"] == single["stages"]["teacher"]["key"]
    assert not st["teacher (member 2)"]["cached"] and st["label"]["members"] == 2
    store = Store(tmp / "cache")
    members = [np.load(store.path("label", st[f"label (member {k})"]["key"]) / "logits.npy") for k in (1, 2)]
    mean = np.load(store.path("ensemble", st["label"]["key"]) / "logits.npy")
    assert np.allclose(mean, (members[0] + members[1]) / 2) and not np.allclose(members[0], members[1])
    teacher = task["models"]["teacher"]
    assert [(m["checkpoint"], m["seed"]) for m in teacher["members"]] == [("minilm", 13), ("minilm", 14)]
    assert teacher["members"][0]["scores"] == single["models"]["teacher"]["scores"]
    assert (tmp / "ensemble" / "models" / "sst2" / "teacher_member2").is_dir()
    report = (tmp / "ensemble" / "report.md").read_text()
    assert "member 2: `minilm` seed 14" in report and "ensemble (mean logits)" in report
    assert main(["export-transfer", str(tmp / "ensemble"), str(tmp / "ensemble-export"), "--cache-dir", str(tmp / "cache")]) == 0
    meta = json.loads((tmp / "ensemble-export" / transfer.META).read_text())
    assert len(meta["teacher"]["members"]) == 2 and len(meta["teacher"]["member_scores"]) == 2
    rows = pq.read_table(tmp / "ensemble-export" / transfer.ROWS)
    assert np.array_equal(np.stack(rows.column("logits").to_numpy(zero_copy_only=False)), mean)


def test_regression_rows_round_trip(tmp_path: Path) -> None:
    """A regression task's rows (STS-B: float gold scores, NaN on synthetic rows; one teacher score)
    come back from the Parquet file exactly as the stage files students read."""
    from harness.data import augment
    from harness.engine import label

    rows = [(("a man plays", "a man sings"), 3.2), (("two dogs", "a cat"), 0.4), (("a man sings", "two dogs"), None)]
    augment.write_transfer_set(iter(rows), 2, tmp_path / "transfer.arrow", regression=True)
    table = label.read_transfer_set(tmp_path / "transfer.arrow")
    scores = np.array([[3.1], [0.6], [2.5]], dtype=np.float32)
    exported = transfer.rows_table(table, scores, regression=True)
    assert exported.column("label").to_pylist() == [3.2, 0.4, None] and exported.column("score").to_pylist()[2] == 2.5
    pq.write_table(exported, tmp_path / transfer.ROWS)
    (tmp_path / transfer.VECTORS).write_bytes(b"")
    work = tmp_path / "work"
    work.mkdir()
    meta = {"rows": 3, "originals": 2, "text_columns": ["text_a", "text_b"], "regression": True, "num_labels": 1}
    transfer.unpack(tmp_path, meta, work)
    back = label.read_transfer_set(work / "transfer.arrow")
    assert back.column("text_b").to_pylist() == table.column("text_b").to_pylist()
    gold = back.column("label").to_numpy()
    assert gold[:2].tolist() == [3.2, 0.4] and np.isnan(gold[2])
    assert np.array_equal(np.load(work / "logits.npy"), scores)
    with pytest.raises(HarnessError, match="the first 1 original"):
        transfer.unpack(tmp_path, {**meta, "originals": 1}, work)
