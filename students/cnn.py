"""Kim (2014)'s CNN for sentence classification, as a student: multichannel embeddings (a frozen and a
trainable copy side by side), convolutions of widths 3, 4 and 5 with 100 filters each, ReLU, max over
time, then the zoo's head (dropout -> FC + ReLU -> linear). d-bert (the paper's authors' code) distilled
into this CNN too.

Registered through students/zoo.py: `cnn`, `cnn_soft`, `cnn_tiny` and the pair forms `siamese_cnn`,
`siamese_cnn_soft`, `siamese_cnn_tiny` (the same encoder on each sentence, shared weights).

Max over time sees only windows that start inside the sentence and end at or before its last token
(padding never wins the max); a sentence shorter than the widest filter gets its one window starting at
its first token, padded with zero vectors, as a sentence padded to the filter's width would.

Exported to ONNX, each convolution is written as one MatMul over each window's stacked rows (`as_matmul`), the
same sums in another order: ONNX Runtime's CPU Conv ran it at the speed of PyTorch's and its int8 ConvInteger
at half that, while the MatMul form ran 2.5x (fp32) and 7x (int8, MatMulInteger) faster than Conv on SST-2
batches of 512 (4,096 sentences, 2 cores). PyTorch keeps Conv1d (oneDNN), which is faster there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.core.errors import HarnessError
from students.zoo import add_embeddings, copy_vectors, embed_words, register


@dataclass(frozen=True)
class CNNSettings:
    """The CNN students' architecture (`student.filters=100`, ...): Kim (2014)'s sizes by default."""

    filters: int = 100
    widths: tuple[int, ...] = (3, 4, 5)
    fc: int = 200
    multichannel: bool = True
    dropout: float = 0.5  # Kim (2014): dropout 0.5 before the classifier

    def __post_init__(self) -> None:
        if self.filters < 1 or self.fc < 1 or not self.widths or min(self.widths) < 1:
            raise HarnessError("student.filters, student.fc and every student.widths entry must be >= 1")
        if not 0 <= self.dropout < 1:
            raise HarnessError("student.dropout must be in [0, 1)")


class CNNEncoder(nn.Module):
    """Embeddings -> one convolution per width -> ReLU -> max over the sentence's own windows."""

    def __init__(self, vocab_size: int, embed_dim: int, cfg: CNNSettings) -> None:
        super().__init__()
        in_dim = add_embeddings(self, vocab_size, embed_dim, cfg.multichannel)
        self.widths = tuple(cfg.widths)
        self.convs = nn.ModuleList(nn.Conv1d(in_dim, cfg.filters, w) for w in self.widths)
        self.out_dim = cfg.filters * len(self.widths)

    def init_embeddings(self, vectors: np.ndarray) -> None:
        copy_vectors(self, vectors)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T) ids, (B,) lengths -> (B, filters x widths)."""
        x = F.pad(embed_words(self, ids).transpose(1, 2), (0, max(self.widths) - 1))  # (B, D, T + w - 1): room for every width
        rows = x.transpose(1, 2) if torch.onnx.is_in_onnx_export() else None  # (B, T + w - 1, D): as_matmul's layout
        lengths = lengths.to(ids.device)
        pooled = []
        for width, conv in zip(self.widths, self.convs):
            h = torch.relu(conv(x) if rows is None else as_matmul(rows, width, conv))  # (B, F, T + max_w - w): window t
            # covers tokens t .. t + w - 1
            starts = torch.arange(h.shape[2], device=ids.device).unsqueeze(0)
            inside = starts <= (lengths - width).clamp(min=0).unsqueeze(1)  # (B, windows)
            pooled.append(h.masked_fill(~inside.unsqueeze(1), float("-inf")).amax(dim=2))
        return torch.cat(pooled, dim=-1)


def as_matmul(rows: torch.Tensor, width: int, conv: nn.Conv1d) -> torch.Tensor:
    """`conv` on (B, T, D) `rows` as one MatMul: each window's `width` rows side by side (B, n, width x D) times
    the kernel laid out to match (width x D, F). Returns (B, F, n), as conv would."""
    n = rows.shape[1] - width + 1
    windows = torch.cat([rows[:, k : k + n] for k in range(width)], dim=-1)  # (B, n, width x D)
    kernel = conv.weight.permute(2, 1, 0).reshape(-1, conv.out_channels)  # row k x D + d: weight[:, d, k]
    return (windows @ kernel + conv.bias).transpose(1, 2)


def encoder(cfg: CNNSettings, vocab_size: int, embed_dim: int) -> CNNEncoder:
    return CNNEncoder(vocab_size, embed_dim, cfg)


register("cnn", encoder, CNNSettings, tiny={"filters": 4, "widths": (2, 3), "fc": 8, "epochs": 1})
