"""The paper's single-sentence student: embeddings -> one BiLSTM layer -> [last forward state,
last backward state] -> FC + ReLU -> linear -> logits. No attention, no norm.

Registered: `bilstm` (gold labels only, original training set: the paper's "BiLSTM, no
distillation"), `bilstm_soft` (distilled from teacher logits on the augmented transfer set) and
`bilstm_tiny` (a tiny distilled variant for tests).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from harness.config import StudentConfig
from harness.registry import STUDENTS, StudentSpec


class BiLSTMEncoder(nn.Module):
    """Embeddings and a one-layer BiLSTM; a sentence becomes [h_forward_last, h_backward_first].

    With `multichannel` (the authors' code), a frozen and a trainable copy of the embeddings are
    concatenated, so the LSTM input is twice the embedding width.
    """

    def __init__(self, vocab_size: int, embed_dim: int, hidden: int, multichannel: bool) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0, sparse=True)  # see distill.LazyAdadelta
        self.static = nn.Embedding(vocab_size, embed_dim, padding_idx=0) if multichannel else None
        if self.static is not None:
            self.static.weight.requires_grad_(False)
        in_dim = embed_dim * (2 if multichannel else 1)
        self.lstm = nn.LSTM(in_dim, hidden, batch_first=True, bidirectional=True)

    def init_embeddings(self, vectors: np.ndarray) -> None:
        weight = torch.from_numpy(np.asarray(vectors, dtype=np.float32))
        self.embed.weight.data.copy_(weight)
        if self.static is not None:
            self.static.weight.data.copy_(weight)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T) ids, (B,) lengths -> (B, 2H): each direction's state after its sentence's last token.

        What packed sequences compute, without packing: each direction is one LSTM call over the
        padded batch (oneDNN on CPU, cuDNN on GPU; packing falls back to a step-by-step path on CPU,
        1.4x slower per training step on SST-2). The backward direction reads each sentence
        reversed within its length, so padding only ever follows a sentence, and each direction's
        state is taken at the sentence's own last step.
        """
        lengths = lengths.to(ids.device)
        steps = torch.arange(ids.shape[1], device=ids.device)
        reversed_ids = ids.gather(1, (lengths.unsqueeze(1) - 1 - steps).clamp(min=0))  # (B, T)
        last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, self.lstm.hidden_size)  # (B, 1, H)
        states = [self._direction(self.embed_inputs(x), suffix).gather(1, last)[:, 0]
                  for x, suffix in ((ids, ""), (reversed_ids, "_reverse"))]
        return torch.cat(states, dim=-1)  # (B, 2H)

    def embed_inputs(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, D) LSTM inputs: the trainable embeddings, and the frozen copy beside them."""
        x = self.embed(ids)  # (B, T, E)
        return torch.cat([x, self.static(ids)], dim=-1) if self.static is not None else x  # (B, T, 2E)

    def _direction(self, x: torch.Tensor, suffix: str) -> torch.Tensor:
        """One direction of `self.lstm` run forwards over (B, T, D) inputs: its (B, T, H) outputs."""
        params = [getattr(self.lstm, f"{name}_l0{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        h0 = x.new_zeros(1, x.shape[0], self.lstm.hidden_size)
        return torch.lstm(x, (h0, h0), params, True, 1, 0.0, self.training, False, True)[0]


class BiLSTMClassifier(nn.Module):
    """Encoder -> FC + ReLU -> linear -> logits."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden: int, fc: int, num_labels: int,
                 multichannel: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = BiLSTMEncoder(vocab_size, embed_dim, hidden, multichannel)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, fc), nn.ReLU(), nn.Linear(fc, num_labels))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(ids, lengths))  # (B, num_labels)


def build(cfg: StudentConfig, vocab_size: int, embed_dim: int, num_labels: int) -> BiLSTMClassifier:
    return BiLSTMClassifier(vocab_size, embed_dim, cfg.hidden, cfg.fc, num_labels, cfg.multichannel, cfg.dropout)


STUDENTS.add("bilstm", StudentSpec("bilstm", build, distill=False, transfer=False))
STUDENTS.add("bilstm_soft", StudentSpec("bilstm", build, distill=True, transfer=True))
STUDENTS.add(
    "bilstm_tiny",
    StudentSpec("bilstm", build, distill=True, transfer=True, overrides={"hidden": 8, "fc": 8, "epochs": 1}),
)
