"""Damaged artefacts are never used: cache entries and model folders check themselves against their
manifests; a damaged cache entry is recomputed, a damaged model folder is a one-line error."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_runner import harness

from harness.core.errors import HarnessError
from harness.engine import manifest
from harness.engine.cache import Store
from harness.engine.stages import cached

SETS = ["teacher.name=hf_tiny", "train_limit=300", "dev_limit=100", "augment.n_iter=2", "measure.enabled=false",
        "measure.threads=1", "ablations="]


def flip(path: Path) -> None:
    """One byte in the middle inverted: same size, different content."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def remove(path: Path) -> None:
    path.unlink()


def run(out: Path, cache: Path):
    return harness("run", "--preset", "smoke", "--tasks", "sst2", "--students", "bilstm,bilstm_tiny",
                   *[a for s in SETS for a in ("--set", s)], "--out", str(out), "--cache-dir", str(cache))


def fingerprint(out: Path) -> tuple[dict, dict]:
    """A run's scores, and the manifests of its model folders (every file's size and sha256)."""
    results = json.loads((out / "results.json").read_text())
    scores = {m: entry["scores"] for m, entry in results["tasks"]["sst2"]["models"].items()}
    manifests = {str(p.parent.relative_to(out)): manifest.read(p.parent) for p in (out / "models").rglob(manifest.NAME)}
    return scores, manifests


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> tuple[Path, Path]:
    """A tiny run from an empty cache: (its output folder, its cache)."""
    tmp = tmp_path_factory.mktemp("pristine")
    proc = run(tmp / "out", tmp / "cache")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "out", tmp / "cache"


def entry(cache: Path, stage: str) -> Path:
    """The stage's cache entry (for students: bilstm's)."""
    for path in sorted((cache / stage).iterdir()):
        if stage != "student" or json.loads((path / "model" / "harness.json").read_text())["plugin"] == "bilstm":
            return path
    raise AssertionError(f"no {stage} entry")


DAMAGE: list[tuple[str, str, Callable[[Path], None]]] = [
    ("teacher", "model/model.safetensors", flip),
    ("student", "model/model.safetensors", flip),
    ("label", "logits.npy", flip),
    ("augment", "transfer.arrow", flip),
    ("label", "logits.npy", truncate),
    ("teacher", "model/config.json", truncate),
    ("student", "model/vocab.json", remove),
    ("augment", "manifest.json", remove),
    ("label", "meta.json", remove),
]


@pytest.mark.slow
@pytest.mark.parametrize("stage,file,damage", DAMAGE, ids=[f"{s}-{f.split('/')[-1]}-{d.__name__}" for s, f, d in DAMAGE])
def test_damaged_entry_is_recomputed(stage: str, file: str, damage: Callable[[Path], None],
                                     pristine: tuple[Path, Path], tmp_path: Path) -> None:
    """The rerun warns in one line naming the file, recomputes that stage, and ends with the undamaged
    run's scores and byte-identical models."""
    out, cache = pristine
    shutil.copytree(cache, tmp_path / "cache")
    damaged = entry(tmp_path / "cache", stage)
    damage(damaged / file)
    proc = run(tmp_path / "out", tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"[{stage}]" in warnings[0] and str(damaged) in warnings[0]
    assert (file if file != manifest.NAME else "no manifest.json") in warnings[0], warnings
    assert f"[{stage}] computing ({damaged.name})" in proc.stdout
    assert fingerprint(tmp_path / "out") == fingerprint(out)
    assert manifest.problem(damaged) is None


@pytest.mark.parametrize("file,damage,words", [
    ("model.safetensors", truncate, "model.safetensors has"),
    ("config.json", flip, "config.json does not match its sha256"),
    ("vocab.json", remove, "vocab.json is missing"),
    ("manifest.json", remove, "no manifest.json"),
])
@pytest.mark.slow
def test_predict_and_measure_refuse_a_damaged_model(file: str, damage: Callable[[Path], None], words: str,
                                                    pristine: tuple[Path, Path], tmp_path: Path, data_root: Path) -> None:
    """`predict` and `measure` on a damaged model folder: exit 2, one line naming the folder and the file."""
    model = tmp_path / "bilstm"
    shutil.copytree(pristine[0] / "models" / "sst2" / "bilstm", model)
    damage(model / file)
    commands = [("predict", "--model", str(model), "--input", str(data_root / "SST-2" / "dev.tsv"))]
    if file == "model.safetensors":  # measure loads through the same check
        commands.append(("measure", "--model", str(model), "--n", "5"))
    for proc in (harness(*args) for args in commands):
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"error: {model}: damaged model folder:")
        assert words in proc.stderr


@pytest.mark.slow
def test_onnx_export_joins_the_manifest(pristine: tuple[Path, Path], tmp_path: Path) -> None:
    """An ONNX export is reused only once the folder's manifest lists it; a damaged one is refused."""
    model = tmp_path / "bilstm"
    shutil.copytree(pristine[0] / "models" / "sst2" / "bilstm", model)
    proc = harness("measure", "--model", str(model), "--backend", "onnx", "--n", "5")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert manifest.lists(model, "model.onnx") and manifest.problem(model) is None
    flip(model / "model.onnx")
    proc = harness("measure", "--model", str(model), "--backend", "onnx", "--n", "5")
    assert proc.returncode == 2 and "model.onnx does not match its sha256" in proc.stderr


def test_report_on_a_results_file_that_is_not_one(tmp_path: Path) -> None:
    """`report` on valid JSON that `run` did not write: one line naming the folder, no traceback."""
    (tmp_path / "results.json").write_text('{"tasks": {"sst2": {}}}')
    proc = harness("report", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: {tmp_path}: results.json lacks what a report needs")


@pytest.mark.slow
def test_cache_verify_and_prune(pristine: tuple[Path, Path], tmp_path: Path) -> None:
    """verify names each damaged entry and exits 1; prune removes damaged, unfinished and leftover folders."""
    cache = tmp_path / "cache"
    shutil.copytree(pristine[1], cache)
    proc = harness("cache", "verify", "--cache-dir", str(cache))
    assert proc.returncode == 0 and " 0 damaged, 0 unfinished" in proc.stdout, proc.stdout
    flip(entry(cache, "label") / "logits.npy")
    (cache / "augment" / "abc.partial").mkdir()
    proc = harness("cache", "verify", "--cache-dir", str(cache))
    assert proc.returncode == 1
    assert f"damaged: {entry(cache, 'label')}: logits.npy does not match its sha256" in proc.stdout
    assert "1 damaged, 1 unfinished" in proc.stdout
    proc = harness("cache", "prune", "--cache-dir", str(cache))
    assert proc.returncode == 0 and "removed damaged:" in proc.stdout and "removed unfinished:" in proc.stdout
    assert not (cache / "label").exists() or not any((cache / "label").iterdir())
    assert not (cache / "augment" / "abc.partial").exists()
    assert harness("cache", "verify", "--cache-dir", str(cache)).returncode == 0


def test_manifest_catches_each_kind_of_damage(tmp_path: Path) -> None:
    """Same-size changes (by hash), truncation and missing files (by size and presence), and a bad manifest."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"x" * 1000)
    (tmp_path / "sub" / "b.json").write_text("{}")
    manifest.write(tmp_path)
    assert manifest.problem(tmp_path) is None and set(manifest.read(tmp_path)) == {"a.bin", "sub/b.json"}
    flip(tmp_path / "a.bin")
    assert manifest.problem(tmp_path) == "a.bin does not match its sha256 (its bytes changed)"
    manifest.write(tmp_path)
    truncate(tmp_path / "a.bin")
    assert manifest.problem(tmp_path).startswith("a.bin has 500 bytes, 1,000 expected")
    manifest.write(tmp_path)
    remove(tmp_path / "sub" / "b.json")
    assert manifest.problem(tmp_path) == "sub/b.json is missing"
    (tmp_path / manifest.NAME).write_text("[1, 2")
    assert manifest.problem(tmp_path) == "manifest.json is damaged (not a manifest)"


def test_failed_build_leaves_nothing_but_a_killed_one_resumes(tmp_path: Path) -> None:
    """A stage that raises removes its work folder; an interrupted one keeps it for the next run."""
    store = Store(tmp_path)

    def failing(work: Path) -> dict:
        (work / "half.npy").write_text("half")
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        cached(store, "label", "k", failing)
    assert not (tmp_path / "label" / "k.partial").exists() and not store.has("label", "k")

    def interrupted(work: Path) -> dict:
        (work / "half.npy").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cached(store, "label", "k", interrupted)
    assert (tmp_path / "label" / "k.partial" / "half.npy").is_file()


def test_failed_run_leaves_no_output_folder(tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run stopped by an error after making its output folder removes it (the cache keeps what finished);
    a folder that was there before is left as it was."""
    from harness import pipeline
    from harness.core.config import load_suite, parse_set
    from harness.engine import stages

    def bad_stage(*args, **kwargs):
        raise HarnessError("bad input found by a stage")

    monkeypatch.setattr(stages, "teacher_stage", bad_stage)
    cfg, info = load_suite("glue", "smoke", parse_set([*SETS, "tasks=sst2"]))
    for out, existed in ((tmp_path / "new", False), (tmp_path / "old", True)):
        if existed:
            out.mkdir()
        with pytest.raises(HarnessError, match="bad input"):
            pipeline.run(cfg, info, out, tmp_path / "cache", None, 1)
        assert out.exists() == existed
