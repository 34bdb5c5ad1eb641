"""The student zoo (students/zoo.py and a file per family): every family registers its single and pair
forms in a label-only and a distilled variant; each model ignores padding; each exports to ONNX, matching
PyTorch on real sentences and pairs, and quantises to int8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from harness.core.registry import STUDENTS
from harness.core.settings import settings_of
from harness.data.tasks import load_task
from harness.engine import ort
from harness.engine.wordmodel import StudentPredictor, Vocab

FAMILIES = ("bilstm", "bigru", "cnn", "bag", "tiny_transformer")
FORMS = [(f"{prefix}{family}", columns) for family in FAMILIES for prefix, columns in (("", 1), ("siamese_", 2))]

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


def build(arch: str, vocab_size: int = 50, embed_dim: int = 12, num_labels: int = 3) -> torch.nn.Module:
    """The arch's tiny variant's model, random weights, in eval mode."""
    spec = STUDENTS.get(f"{arch}_tiny")
    torch.manual_seed(0)
    model = spec.build(settings_of(spec.settings, spec.overrides, arch), vocab_size, embed_dim, num_labels)
    return model.eval()


def test_every_family_has_both_forms_and_both_roles() -> None:
    """`harness ls students`: each family's single and pair forms, label-only and distilled, paired by arch."""
    names = set(STUDENTS.names())
    for arch, columns in FORMS:
        plain, soft = STUDENTS.get(arch), STUDENTS.get(f"{arch}_soft")
        assert not plain.distill and not plain.transfer and soft.distill and soft.transfer
        assert plain.arch == soft.arch == arch and plain.columns == soft.columns == columns
        assert f"{arch}_tiny" in names


@pytest.mark.parametrize(("arch", "columns"), FORMS)
def test_padding_changes_nothing(arch: str, columns: int) -> None:
    """A batch of sentences of different lengths gives each the logits it gets alone (no padding at all)."""
    model = build(arch)
    rng = np.random.default_rng(0)
    sentences = [[torch.from_numpy(rng.integers(1, 50, size=n)) for n in lengths] for lengths in ((1, 7, 3), (5, 2, 9))]
    padded = []
    for col in sentences[:columns]:
        ids = torch.nn.utils.rnn.pad_sequence(col, batch_first=True)
        padded += [torch.cat([ids, torch.zeros(3, 4, dtype=torch.int64)], 1), torch.tensor([len(s) for s in col])]
    with torch.no_grad():
        together = model(*padded)
        alone = [model(*[t for col in sentences[:columns] for t in (col[i][None], torch.tensor([len(col[i])]))])
                 for i in range(3)]
    assert torch.allclose(together, torch.cat(alone), atol=1e-5), arch


@pytest.fixture(scope="module")
def texts(data_root: Path) -> dict[int, list[tuple[str, ...]]]:
    """Real sentences (SST-2) and real pairs (STS-B): 200 of each."""
    return {1: load_task("sst2", data_root)["train"].texts[:200], 2: load_task("stsb", data_root)["train"].texts[:200]}


@pytest.mark.parametrize(("arch", "columns"), FORMS)
def test_onnx_export_matches_and_quantises(arch: str, columns: int, texts: dict, tmp_path: Path) -> None:
    """export_student checks the export against PyTorch itself (it raises on a mismatch); int8 then runs and
    keeps most argmaxes of a random-weight model (whose logits are near ties)."""
    sample = texts[columns]
    vocab = Vocab.from_texts([[t[c] for t in sample] for c in range(columns)])
    model = build(arch, len(vocab), 12, 2)
    predictor = StudentPredictor(model, vocab, {"student": f"{arch}_tiny", "num_labels": 2, "max_tokens": 64})
    path = ort.export_student(predictor, tmp_path / "model.onnx", sample)
    int8 = ort.OrtStudent.from_predictor(predictor, ort.quantize_int8(path, tmp_path / "model.int8.onnx"))
    agree = np.mean(int8.logits(sample, 32).argmax(1) == predictor.logits(sample, 32).argmax(1))
    assert agree >= 0.8, (arch, agree)
    if "cnn" in arch:  # students/cnn.py exports its convolutions as MatMuls (ORT runs Conv slowly)
        ops = {node.op_type for node in onnx.load(str(path)).graph.node}
        assert "Conv" not in ops and "MatMul" in ops, ops


def test_the_cnns_matmul_form_is_its_convolution() -> None:
    """students/cnn.py's export form (as_matmul) gives what Conv1d gives, window by window."""
    from students.cnn import as_matmul

    conv = torch.nn.Conv1d(6, 4, 3)
    rows = torch.randn(2, 9, 6)  # (B, T, D)
    with torch.no_grad():
        torch.testing.assert_close(as_matmul(rows, 3, conv), conv(rows.transpose(1, 2)), atol=1e-5, rtol=1e-5)


def test_the_bag_is_the_mean_of_its_sentences_word_and_bigram_rows() -> None:
    """students/bag.py sums every position (padding and pairs past the end go to zero rows): the result is
    still each sentence's mean of its own words' and bigrams' rows, computed here one sentence at a time."""
    from students.bag import PRIME

    encoder = build("bag").encoder
    with torch.no_grad():
        encoder.bigrams.weight.normal_()
        encoder.bigrams.weight[encoder.buckets].zero_()  # as built: the padding row
    rng = np.random.default_rng(1)
    sentences = [rng.integers(1, 50, size=n) for n in (1, 6, 3, 2)]
    ids = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(s) for s in sentences], batch_first=True)
    with torch.no_grad():
        got = encoder(ids, torch.tensor([len(s) for s in sentences])).numpy()
    words, bigrams = encoder.embed.weight.detach().numpy(), encoder.bigrams.weight.detach().numpy()
    for row, s in zip(got, sentences):
        rows = [words[w] for w in s] + [bigrams[(a * PRIME + b) % encoder.buckets] for a, b in zip(s[:-1], s[1:])]
        np.testing.assert_allclose(row, np.mean(rows, axis=0), atol=1e-5)


def test_the_bag_exports_with_its_first_layer_folded_into_its_tables(texts: dict, tmp_path: Path) -> None:
    """students/bag.py's FoldedBag: ONNX gets (rows, fc) tables and no (D -> fc) matrix, and still gives
    PyTorch's logits (export_student checks them; the bigram rows are made nonzero, as training makes them)."""
    sample = texts[1]
    vocab = Vocab.from_texts([[t[0] for t in sample]])
    model = build("bag", len(vocab), 12, 2)
    with torch.no_grad():
        model.encoder.bigrams.weight[:-1].normal_()  # the last row stays zero: pairs past the sentence's end
    predictor = StudentPredictor(model, vocab, {"student": "bag_tiny", "num_labels": 2, "max_tokens": 64})
    path = ort.export_student(predictor, tmp_path / "model.onnx", sample)
    shapes = [tuple(t.dims) for t in onnx.load(str(path)).graph.initializer if len(t.dims) == 2]
    fc = model.head[1].out_features
    assert (len(vocab), fc) in shapes and (model.encoder.buckets + 1, fc) in shapes, shapes
    assert not any(12 in shape for shape in shapes), shapes  # no table or matrix of the vectors' width is left
