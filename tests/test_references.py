"""Timing-only references: parameter counts of the paper's shapes, ELMo's inputs, padding and order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.core.errors import HarnessError
from harness.core.registry import REFERENCES
from students.elmo import BOS_IDS, EOS_IDS, MAX_CHARS, reverse_padded, sentence_char_ids, word_char_ids

SENTENCES = [
    ("a gripping , beautifully acted film that never lets up .",),
    ("dull",),
    ("the plot is thin , but the performances carry it",),
    ("",),
    ("an utterly charmless mess .",),
]


def test_elmo_parameter_count() -> None:
    """The original ELMo shape: 93,666,400 in the biLM (93.6M, plus torch's second LSTM bias), 4 mix weights, the head."""
    model = REFERENCES.get("elmo").build(2).model
    bilm = sum(p.numel() for p in model.bilm.parameters())
    head = sum(p.numel() for p in model.head.parameters())
    total = sum(p.numel() for p in model.parameters())
    assert bilm == 93_600_864 + 4 * 4 * 4096  # allennlp's count plus one extra bias per LSTM gate set
    assert head == 1024 * 512 + 512 + 512 * 2 + 2
    assert total == bilm + 4 + head
    assert abs(total - 93.6e6) / 93.6e6 < 0.02


@pytest.mark.parametrize(("name", "paper"), [("bert_large", 335e6), ("bert_base", 110e6)])
def test_bert_parameter_counts(name: str, paper: float) -> None:
    """BERT-large and BERT-base shapes with a 2-way head match the published sizes within 1%."""
    teacher = REFERENCES.get(name).build(2)
    total = sum(p.numel() for p in teacher.model.parameters())
    assert abs(total - paper) / paper < 0.01
    assert teacher.num_params()[0] == total
    assert not teacher.model.training


def test_bert_base_forward() -> None:
    """One forward pass of the random BERT-base gives (N, K) float32 logits."""
    out = REFERENCES.get("bert_base").build(3).logits([("a fine film",), ("not good at all",)], batch_size=2)
    assert out.shape == (2, 3) and out.dtype == np.float32 and np.isfinite(out).all()


def test_word_char_ids() -> None:
    """BOW, UTF-8 bytes, EOW, padding, all shifted by one; sentences get <S> and </S> tokens."""
    ids = word_char_ids("hé")
    assert ids[:5] == [259, ord("h") + 1, 0xC3 + 1, 0xA9 + 1, 260]
    assert ids[5:] == [261] * (MAX_CHARS - 5) and len(ids) == MAX_CHARS
    assert BOS_IDS[:3] == [259, 257, 260] and EOS_IDS[:3] == [259, 258, 260]
    assert len(word_char_ids("x" * 80)) == MAX_CHARS and word_char_ids("x" * 80)[-1] == 260
    sentence = sentence_char_ids(("Not bad.",))
    assert sentence[0] == BOS_IDS and sentence[-1] == EOS_IDS
    assert sentence[1:-1] == [word_char_ids("Not"), word_char_ids("bad"), word_char_ids(".")]
    assert sentence_char_ids(("",)) == [BOS_IDS, word_char_ids(""), EOS_IDS]


def test_reverse_padded() -> None:
    """Each row reverses within its length; padding stays put."""
    x = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]]).unsqueeze(-1)  # (B, T, 1)
    out = reverse_padded(x, torch.tensor([4, 2]))
    assert out.squeeze(-1).tolist() == [[4, 3, 2, 1], [6, 5, 0, 0]]


def test_elmo_tiny_logits_order_and_padding() -> None:
    """Batched, length-sorted logits are in input order and equal each sentence run alone."""
    predictor = REFERENCES.get("elmo_tiny").build(3)
    out = predictor.logits(SENTENCES, batch_size=2)
    assert out.shape == (len(SENTENCES), 3) and out.dtype == np.float32
    alone = np.concatenate([predictor.logits([s], batch_size=1) for s in SENTENCES])
    np.testing.assert_allclose(out, alone, atol=1e-5, rtol=0)
    assert np.abs(out - out[0]).max() > 1e-4  # different sentences give different logits
    whole = predictor.logits(SENTENCES, batch_size=len(SENTENCES))
    np.testing.assert_allclose(whole, alone, atol=1e-5, rtol=0)


def test_elmo_directions_are_separate() -> None:
    """Changing the last word leaves earlier forward outputs alone and reaches the first backward output."""
    bilm = REFERENCES.get("elmo_tiny").build(2).model.bilm
    chars = torch.tensor([sentence_char_ids(("a b c",))])  # (1, T, 50)
    changed = chars.clone()
    changed[0, -2] = torch.tensor(word_char_ids("z"))  # the last word
    lengths = torch.tensor([chars.shape[1]])
    with torch.inference_mode():
        before, after = bilm(chars, lengths), bilm(changed, lengths)
    half = before[2].shape[-1] // 2
    torch.testing.assert_close(before[2][0, :-2, :half], after[2][0, :-2, :half])  # forward: past only
    assert not torch.allclose(before[2][0, 0, half:], after[2][0, 0, half:])  # backward: sees the future


def test_elmo_num_params_excludes_char_table() -> None:
    """Embedding-free count leaves out exactly the character embedding table."""
    total, without = REFERENCES.get("elmo_tiny").build(2).num_params()
    assert total - without == 262 * 4


def test_unknown_reference_suggests() -> None:
    with pytest.raises(HarnessError, match="did you mean 'elmo'"):
        REFERENCES.get("elmoo")


def test_elmo_to_returns_itself() -> None:
    predictor = REFERENCES.get("elmo_tiny").build(2)
    assert predictor.to("cpu") is predictor and predictor.device == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_elmo_tiny_on_cuda_matches_cpu() -> None:
    """Inputs follow the model to the GPU; logits match the CPU ones."""
    predictor = REFERENCES.get("elmo_tiny").build(2)
    cpu = predictor.logits(SENTENCES, batch_size=2)
    np.testing.assert_allclose(predictor.to("cuda").logits(SENTENCES, batch_size=2), cpu, atol=1e-4, rtol=0)
