"""ONNX Runtime backend: exported students and teachers match PyTorch on real SST-2 sentences, have
dynamic axes, quantise to int8, and an export that does not match is refused."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from harness.core.config import TeacherConfig
from harness.core.errors import HarnessError
from harness.core.registry import STUDENTS, TEACHERS
from harness.data.tasks import Split, load_task
from harness.engine import ort
from harness.engine.wordmodel import StudentPredictor, Vocab
from students.bilstm import BiLSTMClassifier, BiLSTMSettings

N_CHECK = 1000
N_TEACHER = 200
# A random-weight student has many near-tie logits, the worst case for int8; measured 99.0%.
MIN_INT8_ARGMAX_AGREEMENT = 0.9

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


def op_types(path: Path) -> Counter[str]:
    """How many nodes of each op type an ONNX file's graph has."""
    return Counter(node.op_type for node in onnx.load(str(path)).graph.node)



@pytest.fixture(scope="module")
def train(data_root: Path) -> Split:
    return load_task("sst2", data_root)["train"]


@pytest.fixture(scope="module")
def texts(train: Split) -> list[tuple[str, ...]]:
    """1,000 real SST-2 training sentences (phrases of 1 to ~50 tokens)."""
    return train.texts[:N_CHECK]


@pytest.fixture(scope="module")
def student(train: Split) -> StudentPredictor:
    """The paper's multichannel BiLSTM (small widths, random weights) over the real SST-2 vocabulary."""
    vocab = Vocab.from_texts([[t[0] for t in train.texts]])
    torch.manual_seed(0)
    model = STUDENTS.get("bilstm").build(BiLSTMSettings(hidden=32, fc=16, multichannel=True), len(vocab), 50, 2)
    return StudentPredictor(model, vocab, {"student": "bilstm", "num_labels": 2, "max_tokens": 64})


@pytest.fixture(scope="module")
def exported(student: StudentPredictor, texts: list, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ort.export_student(student, tmp_path_factory.mktemp("onnx") / "student.onnx", texts[:200])


@pytest.mark.parametrize("batch_size", [1, 256])
def test_student_matches_torch(student: StudentPredictor, exported: Path, texts: list, batch_size: int) -> None:
    """ORT and the packed PyTorch student agree within 1e-4 on 1,000 real sentences."""
    onnx_student = ort.OrtStudent.from_predictor(student, exported)
    got = onnx_student.logits(texts, batch_size)  # (N, K)
    want = student.logits(texts, batch_size)  # (N, K)
    assert got.shape == want.shape == (N_CHECK, 2) and got.dtype == np.float32
    assert np.abs(got - want).max() <= ort.STUDENT_TOLERANCE
    assert onnx_student.num_params() == student.num_params()


def test_dynamic_axes(student: StudentPredictor, exported: Path) -> None:
    """Batch and time axes are symbolic; one batch of 3 sentences of different lengths runs and matches."""
    inputs = {i.name: [d.dim_param for d in i.type.tensor_type.shape.dim] for i in onnx.load(str(exported)).graph.input}
    assert inputs == {"ids": ["batch", "time"], "lengths": ["batch"]}
    batch = [("great",), ("a gorgeous , witty , seductive movie",), ("not the best film , but fun",)]
    got = ort.OrtStudent.from_predictor(student, exported).logits(batch, 3)
    assert got.shape == (3, 2)
    assert np.abs(got - student.logits(batch, 3)).max() <= ort.STUDENT_TOLERANCE


def test_int8_student(student: StudentPredictor, exported: Path, texts: list) -> None:
    """The int8 file holds quantised LSTM and matmul ops, is smaller, and mostly agrees with fp32."""
    int8 = ort.quantize_int8(exported, exported.with_name("student.int8.onnx"))
    ops = op_types(int8)
    assert ops["DynamicQuantizeLSTM"] == 1 and ops["MatMulInteger"] >= 2 and ops["LSTM"] == 0  # one bidirectional LSTM
    assert int8.stat().st_size < exported.stat().st_size / 2
    fp32 = ort.OrtStudent.from_predictor(student, exported).logits(texts, 256)  # (N, K)
    q8 = ort.OrtStudent.from_predictor(student, int8).logits(texts, 256)  # (N, K)
    assert q8.shape == (N_CHECK, 2) and np.isfinite(q8).all()
    assert (q8.argmax(-1) == fp32.argmax(-1)).mean() >= MIN_INT8_ARGMAX_AGREEMENT


def test_teacher_matches_torch(texts: list, tmp_path: Path) -> None:
    """The hf_tiny teacher exports with its tokenizer's inputs and matches PyTorch on 200 sentences."""
    teacher = TEACHERS.get("hf_tiny").create(TeacherConfig(name="hf_tiny"), 2)
    path = teacher.export_onnx(tmp_path / "teacher.onnx", texts[:50])
    names = [i.name for i in onnx.load(str(path)).graph.input]
    assert set(names) == set(teacher.encode(texts[:1]).keys())
    onnx_teacher = teacher.onnx_predictor(path)
    got = onnx_teacher.logits(texts[:N_TEACHER], 64)  # (N, K)
    assert np.abs(got - teacher.logits(texts[:N_TEACHER], 64)).max() <= ort.TEACHER_TOLERANCE
    assert onnx_teacher.num_params() == teacher.num_params()


def test_mismatched_export_is_refused(student: StudentPredictor, texts: list, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """An export whose LSTM is not given the sequences' lengths (so its last states are read after the
    padding) fails the check: HarnessError with the measured difference, and nothing is left at the target."""
    monkeypatch.setattr(BiLSTMClassifier, "finish_onnx", lambda self, path, names: None)
    target = tmp_path / "bad.onnx"
    with pytest.raises(HarnessError, match=r"does not match PyTorch: max \|logit difference\| \S+ > 0.0001"):
        ort.export_student(student, target, texts[:200])
    assert list(tmp_path.iterdir()) == []


def test_cuda_request_without_cuda_provider(student: StudentPredictor, exported: Path) -> None:
    """Asking for CUDA where ORT has no CUDA provider is a HarnessError, not a silent CPU run."""
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(HarnessError, match="CUDA is unavailable for ONNX Runtime"):
        ort.OrtStudent.from_predictor(student, exported).to("cuda")
