"""The BiLSTM student: paper parameter count, frozen static channel, padding, packed-sequence
equivalence, bf16 training, save/load, vocab."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from harness.core.config import StudentConfig
from harness.core.registry import STUDENTS
from harness.data.batching import RECURRENT_ROWS_CPU, TokenIds, recurrent_batches
from harness.engine.distill import train_student
from harness.engine.wordmodel import StudentPredictor, Vocab, count_params, load_student
from students.bilstm import BiLSTMClassifier, BiLSTMSettings


def small_model(seed: int = 0) -> BiLSTMClassifier:
    """A tiny multichannel student over a 20-word vocabulary."""
    torch.manual_seed(seed)
    return BiLSTMClassifier(vocab_size=20, embed_dim=6, hidden=5, fc=4, num_labels=2, multichannel=True).eval()


def test_paper_config_parameter_count() -> None:
    """Hidden 150, FC 200, 300-d multichannel input: 963,002 parameters outside the embeddings."""
    model = BiLSTMClassifier(vocab_size=100, embed_dim=300, hidden=150, fc=200, num_labels=2, multichannel=True)
    total, non_embedding = count_params(model)
    assert non_embedding == 963_002
    assert total == 963_002 + 2 * 100 * 300


def test_static_channel_is_frozen() -> None:
    """The static embedding copy gets no gradient; the trainable copy does."""
    model = small_model()
    assert model.encoder.static is not None
    assert model.encoder.static.weight.requires_grad is False
    assert model.encoder.embed.weight.requires_grad is True
    ids, lengths = torch.tensor([[2, 3, 4]]), torch.tensor([3])
    model(ids, lengths).sum().backward()
    assert model.encoder.static.weight.grad is None
    assert model.encoder.embed.weight.grad is not None and model.encoder.embed.weight.grad.abs().sum() > 0


def test_single_channel_has_no_static_copy() -> None:
    """Without multichannel there is one embedding table and the LSTM input is its width."""
    model = BiLSTMClassifier(vocab_size=20, embed_dim=6, hidden=5, fc=4, num_labels=3, multichannel=False)
    assert model.encoder.static is None and model.encoder.lstm.input_size == 6
    assert model(torch.tensor([[2, 3]]), torch.tensor([2])).shape == (1, 3)


def test_forward_shape() -> None:
    """A (B, T) batch gives (B, num_labels) logits."""
    ids = torch.randint(1, 20, (4, 7))
    assert small_model()(ids, torch.tensor([7, 3, 1, 5])).shape == (4, 2)


def test_padding_does_not_change_logits() -> None:
    """A sentence alone and padded inside a longer batch gives the same logits."""
    model = small_model()
    alone = model(torch.tensor([[5, 6, 7]]), torch.tensor([3]))
    batch = torch.tensor([[1, 2, 3, 4, 5, 6, 7], [5, 6, 7, 0, 0, 0, 0]])
    padded = model(batch, torch.tensor([7, 3]))
    torch.testing.assert_close(padded[1:], alone, atol=1e-6, rtol=0)
    garbage = batch.clone()
    garbage[1, 3:] = 9  # whatever sits past the length must be ignored
    torch.testing.assert_close(model(garbage, torch.tensor([7, 3]))[1:], alone, atol=1e-6, rtol=0)


def test_unpacked_directions_equal_packed_sequences() -> None:
    """The encoder's two one-direction LSTM calls over the padded batch give what the bidirectional LSTM
    gives over packed sequences (the paper's reading): states and every gradient, up to float rounding."""
    torch.manual_seed(0)
    model = BiLSTMClassifier(vocab_size=50, embed_dim=6, hidden=5, fc=4, num_labels=2).train()
    enc = model.encoder
    lengths = torch.tensor([7, 1, 4, 7, 2])
    ids = torch.randint(2, 50, (5, 7)) * (torch.arange(7) < lengths.unsqueeze(1))  # padding (0) after each length

    def packed() -> torch.Tensor:
        x = torch.cat([enc.embed(ids), enc.static(ids)], dim=-1)
        h = enc.lstm(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))[1][0]
        return torch.cat([h[0], h[1]], dim=-1)

    results = []
    for encode in (packed, lambda: enc(ids, lengths)):
        model.zero_grad()
        states = encode()
        (states * torch.arange(1.0, 11.0)).sum().backward()  # weight each output differently
        results.append([states.detach(), *(p.grad.to_dense() for p in enc.parameters() if p.requires_grad)])
    assert len(results[1]) == 10  # the states, the trainable embeddings, 4 LSTM tensors per direction
    for ref, got in zip(*results):
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)


def test_bf16_training_keeps_fp32_weights() -> None:
    """student.precision=bf16 trains under autocast: the loss falls, the weights stay fp32 and move."""
    torch.manual_seed(0)
    model = small_model().train()
    rows = [[2 + i % 2, 3 + i % 7, 4] for i in range(64)]
    ids = TokenIds.from_lists(rows)
    targets = np.array([i % 2 for i in range(64)])  # the first word's
    padded, labels = ids.pad(range(64)), torch.from_numpy(targets)

    def train_loss() -> float:
        """Cross-entropy on the 64 training rows, in fp32 (outside autocast)."""
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(model(*padded), labels))

    start, before = train_loss(), model.head[-1].weight.detach().clone()
    dtypes = []  # the logits' dtype at each training step
    hook = model.head[-1].register_forward_hook(lambda m, _, out: dtypes.append(out.dtype) if m.training else None)
    cfg = StudentConfig(batch_size=16, epochs=2, precision="bf16", lr=10.0)  # Adadelta at lr 1 barely moves in 8 steps
    result = train_student(model, cfg, [ids], targets, None, [ids], targets.tolist(), ("accuracy",),
                           lambda dev: model(*dev[0].pad(range(len(dev[0])))).detach().numpy(), 0, "bf16")
    hook.remove()
    assert dtypes == [torch.bfloat16] * 8  # 4 batches of 16 a epoch, each under autocast
    assert all(p.dtype == torch.float32 and bool(torch.isfinite(p).all()) for p in model.parameters())
    assert not torch.equal(model.head[-1].weight, before)
    assert train_loss() < start / 2, (start, train_loss())  # measured: 0.706 -> 0.214
    assert [h["select"]["accuracy"] for h in result["history"]] == [50.0, 100.0]


def test_a_watched_dev_curve_chooses_nothing() -> None:
    """student.watch_dev scores dev at every check into the history; the weights, the selection curve and the
    stopping point are those of the same training without it, and each watched score is that check's dev score."""
    rows = [[2 + i % 5, 3 + i % 7, 4 + i % 3] for i in range(96)]
    ids, targets = TokenIds.from_lists(rows), np.array([(i // 2) % 2 for i in range(96)])
    dev_rows = [[2 + i % 3, 3 + i % 5] for i in range(40)]
    dev = (TokenIds.from_lists(dev_rows), [i % 2 for i in range(40)])
    cfg = StudentConfig(batch_size=16, epochs=6, evals_per_epoch=2, patience=3)
    runs, seen = [], []
    for watch in (None, ([dev[0]], dev[1])):
        torch.manual_seed(0)
        model = small_model()

        def predict(split: list[TokenIds], model: torch.nn.Module = model) -> np.ndarray:
            out = model(*split[0].pad(range(len(split[0])))).detach().numpy()
            if split[0] is dev[0]:
                seen.append(100 * float(np.mean(out.argmax(1) == np.array(dev[1]))))
            return out

        result = train_student(model, cfg, [ids], targets, None, [ids], targets.tolist(), ("accuracy",), predict, 0, "w",
                               watch=watch)
        runs.append((result, [p.detach().clone() for p in model.parameters()]))
    (plain, plain_weights), (watched, watched_weights) = runs
    assert [h["select"] for h in plain["history"]] == [h["select"] for h in watched["history"]]
    assert all("dev" not in h for h in plain["history"]) and len(plain["history"]) >= 3
    assert [h["dev"]["accuracy"] for h in watched["history"]] == pytest.approx(seen)
    for a, b in zip(plain_weights, watched_weights):
        assert torch.equal(a, b)


def test_the_report_gives_the_best_watched_dev_score() -> None:
    from harness.results.report import watched_lines

    stages = {"teacher": {"history": [{"epoch": 1, "select": {"accuracy": 90.0}}]},
              "bilstm_soft": {"history": [{"epoch": e, "select": {"accuracy": 95.0}, "dev": {"accuracy": d}}
                                          for e, d in ((0.25, 86.0), (0.5, 88.5), (0.75, 87.0))]}}
    lines = watched_lines(stages)
    assert lines[2] == "- `bilstm_soft`: 88.50 at epoch 0.5, the best of 3 checks" and len(lines) == 4
    assert watched_lines({"bilstm": {"history": [{"epoch": 1, "select": {"accuracy": 95.0}}]}}) == []


def test_the_report_gives_the_kept_checks_dev_and_how_alike_the_splits_rank_the_checks(monkeypatch) -> None:
    """The kept check is the one with the best selection score; from epoch 1 the selection split here ranks the
    checks nearly the opposite way to dev (Spearman -0.8), and a metric where lower is better picks the lowest dev."""
    from harness.results.report import watched_lines

    curve = [(0.5, 90.0, 80.0), (1.0, 91.0, 89.0), (1.5, 92.0, 88.0), (2.0, 94.0, 87.0), (2.5, 93.0, 86.0)]
    stage = {"best_select": 94.0, "history": [{"epoch": e, "select": {"accuracy": s}, "dev": {"accuracy": d}}
                                               for e, s, d in curve]}
    assert watched_lines({"s": stage})[2] == ("- `s`: 89.00 at epoch 1, the best of 5 checks; the kept check (epoch 2) "
                                              "87.00; selection and dev rank the 4 checks from epoch 1 alike by Spearman -0.80")
    from harness.core.metrics import METRICS, Metric

    monkeypatch.setitem(METRICS, "error", Metric(lambda y, p: 0.0, higher_is_better=False))
    error = {"history": [{"epoch": e, "select": {"error": 1.0}, "dev": {"error": d}} for e, d in ((1, 0.5), (2, 0.3), (3, 0.4))]}
    assert watched_lines({"s": error})[2].startswith("- `s`: 0.30 at epoch 2, the best of 3 checks")


def test_inference_calls_are_length_sorted_groups() -> None:
    """On a CPU a batch of 512 texts runs as length-sorted calls of at most 32 rows (a GPU takes it whole),
    and the logits are those of one sentence at a time, in input order."""
    lengths = np.random.default_rng(0).integers(1, 50, 512)
    calls = recurrent_batches(lengths, 512)
    assert max(map(len, calls)) == RECURRENT_ROWS_CPU and sorted(np.concatenate(calls)) == list(range(512))
    assert [len(c) for c in recurrent_batches(lengths, 512, "cuda:0")] == [512]
    words = ["a", "good", "bad", "film", "very", "not"]
    texts = [(" ".join(words[(i * j) % 6] for j in range(1 + i % 17)),) for i in range(100)]
    vocab = Vocab.from_texts([[t[0] for t in texts]])
    torch.manual_seed(0)
    model = BiLSTMClassifier(len(vocab), 6, 5, 4, 2)
    predictor = StudentPredictor(model, vocab, {"num_labels": 2, "max_tokens": 64})
    one_by_one = np.concatenate([predictor.logits([t], 1) for t in texts])
    np.testing.assert_allclose(predictor.logits(texts, 512), one_by_one, atol=1e-6)


def test_predictor_save_load_round_trip(tmp_path: Path) -> None:
    """A saved student reloads through the registry and gives identical logits."""
    texts = [("a good film",), ("a bad , bad film",), ("unseen words here",), ("",)]
    vocab = Vocab.from_texts([["a good film", "a bad , bad film"]])
    cfg = BiLSTMSettings(hidden=6, fc=5)
    torch.manual_seed(1)
    model = STUDENTS.get("bilstm_tiny").build(cfg, len(vocab), 7, 2)
    model.init_embeddings(np.random.default_rng(0).normal(size=(len(vocab), 7)))
    meta = {"student": "bilstm_tiny", "task": "sst2", "num_labels": 2, "embed_dim": 7, "max_tokens": 64,
            "hidden": 6, "fc": 5, "multichannel": True, "dropout": 0.0}
    predictor = StudentPredictor(model, vocab, meta)
    predictor.save(tmp_path / "model")
    loaded = load_student(tmp_path / "model")
    assert loaded.vocab.itos == vocab.itos
    np.testing.assert_array_equal(loaded.logits(texts), predictor.logits(texts))
    assert loaded.num_params() == predictor.num_params()


def test_vocab_order_and_unknowns() -> None:
    """Padding is 0, unknown 1, then words by frequency; unknown words map to 1, empty input to [1]."""
    vocab = Vocab.from_texts([["b a a", "c b a"]])
    assert vocab.itos == ["<pad>", "<unk>", "a", "b", "c"]
    assert vocab.encode(["a", "zzz", "c"], 64) == [2, 1, 4]
    assert vocab.encode([], 64) == [1]
    assert vocab.encode(["a", "b", "c"], 2) == [2, 3]
