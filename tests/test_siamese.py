"""The Siamese BiLSTM pair student: shapes, one shared encoder, padding, save/load, ONNX export on
real MNLI pairs, and the check that a student fits its task's number of sentences."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from harness.core.errors import HarnessError
from harness.core.registry import STUDENTS, TASKS
from harness.data.augment import tokenize
from harness.data.tasks import read_tsv
from harness.engine import ort
from harness.engine.student_stage import check_student_fits
from harness.engine.wordmodel import StudentPredictor, Vocab, count_params, load_student
from students.bilstm import BiLSTMClassifierTwin, BiLSTMSettings
from students.siamese import SiameseBiLSTM, SiameseBiLSTMTwin

N_PAIRS = 400

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread



def small_model(seed: int = 0, num_labels: int = 3) -> SiameseBiLSTM:
    """A tiny multichannel pair student over a 30-word vocabulary."""
    torch.manual_seed(seed)
    return SiameseBiLSTM(vocab_size=30, embed_dim=6, hidden=5, fc=4, num_labels=num_labels).eval()


def test_forward_shape_and_sizes() -> None:
    """(B, Ta) and (B, Tb) batches of different widths give (B, K) logits; the head reads 4 x 2H."""
    model = small_model()
    ids_a, ids_b = torch.randint(1, 30, (4, 7)), torch.randint(1, 30, (4, 3))
    out = model(ids_a, torch.tensor([7, 3, 1, 5]), ids_b, torch.tensor([3, 3, 2, 1]))
    assert out.shape == (4, 3)
    assert model.head[1].in_features == 8 * 5


def test_one_shared_encoder() -> None:
    """There is one encoder (no second LSTM or embedding table): the parameter count is the
    single-sentence encoder's plus the wider head, and both sides use the same encoding."""
    model = small_model()
    lstms = [m for m in model.modules() if isinstance(m, torch.nn.LSTM)]
    assert len(lstms) == 1
    head = 8 * 5 * 4 + 4 + 4 * 3 + 3
    assert count_params(model)[0] == count_params(model.encoder)[0] + head
    ids, lengths = torch.tensor([[2, 3, 4]]), torch.tensor([3])
    h = model.encoder(ids, lengths)  # (1, 2H)
    torch.testing.assert_close(model(ids, lengths, ids, lengths), model.classify(h, h))


def test_pair_features() -> None:
    """[h1, h2, h1 * h2, |h1 - h2|]."""
    h1, h2 = torch.tensor([[1.0, -2.0]]), torch.tensor([[3.0, 1.0]])
    assert SiameseBiLSTM.features(h1, h2).tolist() == [[1.0, -2.0, 3.0, 1.0, 3.0, -2.0, 2.0, 3.0]]


def test_padding_does_not_change_logits() -> None:
    """A pair alone and inside a batch padded to longer sentences on either side agree."""
    model = small_model()
    alone = model(torch.tensor([[5, 6]]), torch.tensor([2]), torch.tensor([[7, 8, 9]]), torch.tensor([3]))
    ids_a = torch.tensor([[1, 2, 3, 4, 5], [5, 6, 0, 0, 0]])
    ids_b = torch.tensor([[1, 2, 0, 0], [7, 8, 9, 0]])
    batch = model(ids_a, torch.tensor([5, 2]), ids_b, torch.tensor([2, 3]))
    torch.testing.assert_close(batch[1:], alone, atol=1e-6, rtol=0)


def test_registered_variants() -> None:
    """Label-only on the original set, distilled on the transfer set, and a tiny test variant."""
    plain, soft, tiny = (STUDENTS.get(n) for n in ("siamese_bilstm", "siamese_bilstm_soft", "siamese_bilstm_tiny"))
    assert (plain.distill, plain.transfer) == (False, False) and (soft.distill, soft.transfer) == (True, True)
    assert {s.arch for s in (plain, soft, tiny)} == {"siamese_bilstm"} and tiny.overrides["hidden"] == 8
    assert all(s.columns == 2 for s in (plain, soft, tiny)) and STUDENTS.get("bilstm").columns == 1


def test_student_must_fit_the_task() -> None:
    """A single-sentence student on a pair task (and the reverse) is a clear error."""
    check_student_fits("siamese_bilstm", TASKS.get("qqp"))
    with pytest.raises(HarnessError, match="bilstm reads 1 sentence.*task mnli has 2.*siamese_bilstm"):
        check_student_fits("bilstm", TASKS.get("mnli"))
    with pytest.raises(HarnessError, match="task sst2 has 1"):
        check_student_fits("siamese_bilstm_tiny", TASKS.get("sst2"))


@pytest.fixture(scope="module")
def pairs(data_root: Path) -> list[tuple[str, ...]]:
    """Real MNLI dev_matched pairs (premises of 1 to ~70 tokens)."""
    return read_tsv(data_root / "MNLI" / "dev_matched.tsv", TASKS.get("mnli"), require_labels=True).texts[:N_PAIRS]


@pytest.fixture(scope="module")
def predictor(pairs: list[tuple[str, ...]]) -> StudentPredictor:
    """The pair student (small widths, random weights) over the pairs' vocabulary."""
    vocab = Vocab.from_texts([[" ".join(tokenize(s)) for s in col] for col in zip(*pairs[: N_PAIRS // 2])])
    torch.manual_seed(0)
    cfg = BiLSTMSettings(hidden=16, fc=8)
    model = STUDENTS.get("siamese_bilstm").build(cfg, len(vocab), 12, 3)
    model.init_embeddings(np.random.default_rng(0).normal(size=(len(vocab), 12)))
    meta = {"student": "siamese_bilstm", "task": "mnli", "num_labels": 3, "embed_dim": 12, "max_tokens": 64,
            "hidden": 16, "fc": 8, "multichannel": True, "dropout": 0.0}
    return StudentPredictor(model, vocab, meta)


def test_save_load_round_trip(predictor: StudentPredictor, pairs: list, tmp_path: Path) -> None:
    """A saved pair student reloads through the registry and gives identical logits."""
    predictor.save(tmp_path / "model")
    loaded = load_student(tmp_path / "model")
    assert isinstance(loaded.model, SiameseBiLSTM)
    np.testing.assert_array_equal(loaded.logits(pairs, 64), predictor.logits(pairs, 64))


@pytest.mark.parametrize("batch_size", [1, 256])
def test_onnx_export_matches_torch(predictor: StudentPredictor, pairs: list, tmp_path: Path, batch_size: int) -> None:
    """The export twin (one encoder twin run on each sentence) matches the packed PyTorch student
    within 1e-4 on 400 real pairs; inputs are ids_0/lengths_0/ids_1/lengths_1, each column with its
    own time axis;
    the shared encoder's weights are stored once; int8 quantises both sides' LSTMs and agrees with fp32."""
    path = ort.export_student(predictor, tmp_path / "student.onnx", pairs[:100])
    graph = onnx.load(str(path)).graph
    dims = {i.name: [d.dim_param for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert dims == {"ids_0": ["batch", "time_0"], "lengths_0": ["batch"], "ids_1": ["batch", "time_1"], "lengths_1": ["batch"]}
    stored = sum(int(np.prod(t.dims)) for t in graph.initializer)
    assert stored <= predictor.num_params()[0] * 1.01  # not two copies of the encoder
    got = ort.OrtStudent.from_predictor(predictor, path).logits(pairs, batch_size)  # (N, 3)
    assert got.shape == (N_PAIRS, 3)
    assert np.abs(got - predictor.logits(pairs, batch_size)).max() <= ort.STUDENT_TOLERANCE
    if batch_size == 1:
        return
    int8 = ort.quantize_int8(path, tmp_path / "student.int8.onnx")
    ops = Counter(n.op_type for n in onnx.load(str(int8)).graph.node)
    assert ops["DynamicQuantizeLSTM"] == 2 and ops["LSTM"] == 0  # 2 sides, each one bidirectional LSTM, all quantised
    assert int8.stat().st_size < path.stat().st_size
    q8 = ort.OrtStudent.from_predictor(predictor, int8).logits(pairs, 256)  # (N, 3)
    # both sides' LSTMs quantised right (each LSTM node its own weights: ort.prepare_for_quantization).
    # Measured: max |delta logit| 0.0026 and 99.75% argmax agreement; with the two sides' LSTM nodes
    # sharing their weights, 0.123 and 88.75%.
    assert np.abs(q8 - got).max() <= 0.03 and (q8.argmax(-1) == got.argmax(-1)).mean() >= 0.97


def test_twin_registered() -> None:
    """The pair architecture has its export twin beside the single-sentence one."""
    pair, single = STUDENTS.get("siamese_bilstm"), STUDENTS.get("bilstm")
    assert (pair.columns, single.columns) == (2, 1)
    torch.manual_seed(0)
    model = pair.build(BiLSTMSettings(hidden=5, fc=4), 30, 6, 3).eval()
    twin = model.export_module()
    assert type(twin) is SiameseBiLSTMTwin
    assert type(single.build(BiLSTMSettings(hidden=5, fc=4), 30, 6, 2).export_module()) is BiLSTMClassifierTwin
    assert {id(p) for p in twin.parameters()} == {id(p) for p in model.parameters()}  # shared, not copied
    # Two columns in order (ids_0, lengths_0, ids_1, lengths_1) give the model's logits. Full-length sentences: the
    # twin runs the LSTM over the padding, which ONNX Runtime's sequence_lens skips (feed_lengths).
    ids_a, ids_b = torch.randint(1, 30, (4, 7)), torch.randint(1, 30, (4, 3))
    full_a, full_b = torch.full((4,), 7), torch.full((4,), 3)
    with torch.no_grad():
        torch.testing.assert_close(twin(ids_a, full_a, ids_b, full_b), model(ids_a, full_a, ids_b, full_b),
                                   atol=1e-6, rtol=0)
