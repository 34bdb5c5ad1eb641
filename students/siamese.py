"""The paper's sentence-pair student: one BiLSTM encoder, weights shared, encodes each sentence to
h1 and h2; features [h1, h2, h1 * h2, |h1 - h2|] -> FC + ReLU -> linear -> logits.

Registered: `siamese_bilstm` (gold labels only, original training set: the paper's "BiLSTM, no
distillation" for pairs), `siamese_bilstm_soft` (distilled from teacher logits on the augmented
transfer set) and `siamese_bilstm_tiny` (a tiny distilled variant for tests); with GRU cells
(`student.cell=gru`) the same three as `siamese_bigru`, `siamese_bigru_soft`, `siamese_bigru_tiny`. Sizes come from
StudentConfig: the paper used hidden 300 for QQP, 150 for MNLI, FC 200, batch 256.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness.core.registry import STUDENTS, StudentSpec
from students.bilstm import GRU, BiLSTMEncoder, BiLSTMEncoderTwin, BiLSTMSettings, LSTMExport
from students.zoo import head, pair_features


class SiameseBiLSTMTwin(nn.Module):
    """`SiameseBiLSTM` for export: two text columns, (ids_0, lengths_0, ids_1, lengths_1) -> logits. One
    encoder twin (the shared weights) encodes each sentence in turn: one ONNX LSTM node per column."""

    def __init__(self, model: SiameseBiLSTM) -> None:
        super().__init__()
        self.encoder = BiLSTMEncoderTwin(model.encoder)
        self.head = model.head
        self.features = model.features  # [h1, h2, h1 * h2, |h1 - h2|], the student's own function

    def forward(self, ids_0: torch.Tensor, lengths_0: torch.Tensor, ids_1: torch.Tensor,
                lengths_1: torch.Tensor) -> torch.Tensor:
        h1 = self.encoder(ids_0, lengths_0)  # (B, 2H)
        h2 = self.encoder(ids_1, lengths_1)  # (B, 2H)
        return self.head(self.features(h1, h2))  # (B, K)


class SiameseBiLSTM(LSTMExport, nn.Module):
    """Shared encoder on both sentences -> pair features -> FC + ReLU -> linear -> logits."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden: int, fc: int, num_labels: int,
                 multichannel: bool = True, dropout: float = 0.0, cell: str = "lstm") -> None:
        super().__init__()
        self.encoder = BiLSTMEncoder(vocab_size, embed_dim, hidden, multichannel, cell)
        self.head = head(8 * hidden, fc, num_labels, dropout)

    features = staticmethod(pair_features)  # the ONNX export twin uses the same function

    def classify(self, h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
        """Logits from the two (B, 2H) sentence encodings."""
        return self.head(self.features(h1, h2))  # (B, num_labels)

    def forward(self, ids_a: torch.Tensor, lengths_a: torch.Tensor, ids_b: torch.Tensor,
                lengths_b: torch.Tensor) -> torch.Tensor:
        """Both sentences go through the encoder as one batch of 2B (one LSTM call, not two)."""
        batch, steps = ids_a.shape[0], max(ids_a.shape[1], ids_b.shape[1])
        ids = torch.cat([F.pad(ids_a, (0, steps - ids_a.shape[1])), F.pad(ids_b, (0, steps - ids_b.shape[1]))])  # (2B, T)
        h = self.encoder(ids, torch.cat([lengths_a, lengths_b]))  # (2B, 2H)
        return self.classify(h[:batch], h[batch:])  # (B, num_labels)

    def export_module(self) -> nn.Module:
        return SiameseBiLSTMTwin(self)


def build(cfg: BiLSTMSettings, vocab_size: int, embed_dim: int, num_labels: int) -> SiameseBiLSTM:
    return SiameseBiLSTM(vocab_size, embed_dim, cfg.hidden, cfg.fc, num_labels, cfg.multichannel, cfg.dropout, cfg.cell)


STUDENTS.add("siamese_bilstm", StudentSpec("siamese_bilstm", build, BiLSTMSettings, distill=False, transfer=False, columns=2))
STUDENTS.add("siamese_bilstm_soft", StudentSpec("siamese_bilstm", build, BiLSTMSettings, distill=True, transfer=True, columns=2))
STUDENTS.add(
    "siamese_bilstm_tiny",
    StudentSpec("siamese_bilstm", build, BiLSTMSettings, distill=True, transfer=True, columns=2,
                overrides={"hidden": 8, "fc": 8, "epochs": 1}),
)
STUDENTS.add("siamese_bigru", StudentSpec("siamese_bigru", build, BiLSTMSettings, distill=False, transfer=False, columns=2,
                                          overrides=GRU))
STUDENTS.add("siamese_bigru_soft", StudentSpec("siamese_bigru", build, BiLSTMSettings, distill=True, transfer=True, columns=2,
                                               overrides=GRU))
STUDENTS.add("siamese_bigru_tiny", StudentSpec("siamese_bigru", build, BiLSTMSettings, distill=True, transfer=True, columns=2,
                                               overrides={**GRU, "hidden": 8, "fc": 8, "epochs": 1}))
