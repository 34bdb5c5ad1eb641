"""What the zoo's student families share, so each family is one file: its settings, its sentence encoder,
and one `register` call.

A sentence encoder is a torch module: (ids (B, T), lengths (B,)) -> (B, out_dim), with `out_dim` and
`init_embeddings(vectors)`; optionally `fold_head(head)`, the single-sentence student in an equivalent form that
exports to a faster ONNX graph (bag.py's). From it come:
- the single-sentence student: encoder -> dropout -> FC + ReLU -> linear -> logits (the BiLSTM's head);
- the pair student: the same encoder, weights shared, on each sentence: h1, h2; then
  [h1, h2, h1 * h2, |h1 - h2|] -> dropout -> FC + ReLU -> linear (the Siamese BiLSTM's head).

`register(family, ...)` adds the family's students, as bilstm.py and siamese.py add theirs:
`<family>` (gold labels, original training set), `<family>_soft` (distilled on the augmented transfer set),
`<family>_tiny` (a tiny distilled variant for the tests and CI's smoke run), and the pair forms
`siamese_<family>`, `siamese_<family>_soft`, `siamese_<family>_tiny`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from harness.core.registry import STUDENTS, StudentSpec


def pair_features(h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
    """f(h1, h2) = [h1, h2, h1 * h2, |h1 - h2|] for (B, D) encodings."""
    return torch.cat([h1, h2, h1 * h2, (h1 - h2).abs()], dim=-1)  # (B, 4D)


def head(in_dim: int, fc: int, num_labels: int, dropout: float) -> nn.Sequential:
    """Dropout -> FC + ReLU -> linear: the students' classifier over an encoding."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, fc), nn.ReLU(), nn.Linear(fc, num_labels))


class Student(nn.Module):
    """What both forms share: the encoder's initial vectors and its calibration workload (a transformer encoder
    says `transformer`: harness/speed/calibrate.py; others leave the default, recurrent)."""

    encoder: nn.Module

    def init_embeddings(self, vectors: np.ndarray) -> None:
        self.encoder.init_embeddings(vectors)

    @property
    def calibration(self) -> str | None:
        return getattr(self.encoder, "calibration", None)


class SentenceStudent(Student):
    """One text column: encoder -> head -> logits."""

    def __init__(self, encoder: nn.Module, fc: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head(encoder.out_dim, fc, num_labels, dropout)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(ids, lengths))  # (B, num_labels)

    def export_module(self) -> nn.Module:
        """What ONNX gets: the encoder's own form of the whole student where it has one (`fold_head(head)`,
        e.g. bag.py's, which folds the head's first layer into its tables), else the student itself."""
        fold = getattr(self.encoder, "fold_head", None)
        return self if fold is None else fold(self.head)


class PairStudent(Student):
    """Two text columns: the shared encoder on each, pair features -> head -> logits."""

    def __init__(self, encoder: nn.Module, fc: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head(4 * encoder.out_dim, fc, num_labels, dropout)

    def forward(self, ids_a: torch.Tensor, lengths_a: torch.Tensor, ids_b: torch.Tensor,
                lengths_b: torch.Tensor) -> torch.Tensor:
        return self.head(pair_features(self.encoder(ids_a, lengths_a), self.encoder(ids_b, lengths_b)))


def register(family: str, encoder: Callable, settings: type, tiny: dict, version: int = 0) -> None:
    """Register a family's six students (module docstring).

    Args:
        family: its name, e.g. `cnn`: the students' names start with it, and it is their `arch`
            (`siamese_<family>` for the pair forms), which pairs each distilled student with its label-only one.
        encoder: (settings, vocab_size, embed_dim) -> a sentence encoder.
        settings: the family's settings dataclass; it has `fc` and `dropout`, used by the head.
        tiny: the tiny variant's overrides (architecture or training settings).
        version: the family's StudentSpec.version: bump it when its code changes what it trains.
    """

    def single(cfg, vocab_size: int, embed_dim: int, num_labels: int) -> SentenceStudent:
        return SentenceStudent(encoder(cfg, vocab_size, embed_dim), cfg.fc, num_labels, cfg.dropout)

    def pair(cfg, vocab_size: int, embed_dim: int, num_labels: int) -> PairStudent:
        return PairStudent(encoder(cfg, vocab_size, embed_dim), cfg.fc, num_labels, cfg.dropout)

    for prefix, build, columns in (("", single, 1), ("siamese_", pair, 2)):
        arch = f"{prefix}{family}"
        common = {"columns": columns, "version": version}
        STUDENTS.add(arch, StudentSpec(arch, build, settings, distill=False, transfer=False, **common))
        STUDENTS.add(f"{arch}_soft", StudentSpec(arch, build, settings, distill=True, transfer=True, **common))
        STUDENTS.add(f"{arch}_tiny", StudentSpec(arch, build, settings, distill=True, transfer=True, overrides=tiny, **common))


def add_embeddings(module: nn.Module, vocab_size: int, embed_dim: int, multichannel: bool) -> int:
    """Give `module` its word embeddings: `embed`, trainable (sparse gradients: distill.LazyAdadelta), and with
    `multichannel` (Kim 2014; the paper's authors' code) `static`, a frozen copy beside it. Returns the width of
    what `embed_words` gives: twice `embed_dim` with multichannel."""
    module.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0, sparse=True)
    module.static = nn.Embedding(vocab_size, embed_dim, padding_idx=0) if multichannel else None
    if module.static is not None:
        module.static.weight.requires_grad_(False)
    return embed_dim * (2 if multichannel else 1)


def copy_vectors(module: nn.Module, vectors: np.ndarray) -> None:
    """The run's initial word vectors into `module.embed` (and its frozen copy)."""
    weight = torch.from_numpy(np.asarray(vectors, dtype=np.float32))
    module.embed.weight.data.copy_(weight)
    if module.static is not None:
        module.static.weight.data.copy_(weight)


def embed_words(module: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """(B, T) ids -> (B, T, D): the trainable embeddings, and the frozen copy beside them."""
    x = module.embed(ids)
    return torch.cat([x, module.static(ids)], dim=-1) if module.static is not None else x


def valid_positions(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, steps) bool: True where a position holds a token (before the sentence's length)."""
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def masked_mean(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over the valid positions of (B, T, D) x: (B, D)."""
    weight = valid.unsqueeze(-1).to(x.dtype)
    return (x * weight).sum(1) / weight.sum(1).clamp(min=1.0)
