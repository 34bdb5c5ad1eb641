"""A tiny transformer encoder as a student: word embeddings projected to `width`, learned positions, `layers`
pre-norm encoder blocks (multi-head self-attention over the sentence's own tokens, then a GELU
feed-forward), a final layer norm, the mean over the sentence's tokens, then the zoo's head (dropout ->
FC + ReLU -> linear). Only the task's logits are distilled, as in the paper (no hidden states or
attention maps are matched).

Initialisation: the word embeddings start from the run's vectors (`student.embedding`; by default the
teacher's, read off its WordPiece input table, harness/engine/embeddings.py); the tokens are the harness's
words, not the teacher's WordPieces. The projection, positions and blocks start from scratch.

Registered through students/zoo.py: `tiny_transformer`, `tiny_transformer_soft`, `tiny_transformer_tiny` and the pair
forms `siamese_tiny_transformer`, `siamese_tiny_transformer_soft`, `siamese_tiny_transformer_tiny`.

Attention is written out (a matmul, a softmax, a matmul), so the ONNX export is the module as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from harness.core.errors import HarnessError
from students.zoo import add_embeddings, copy_vectors, masked_mean, register, valid_positions


@dataclass(frozen=True)
class TransformerSettings:
    """The tiny transformer students' architecture (`student.layers=2`, `student.width=256`, ...)."""

    layers: int = 2
    width: int = 256
    heads: int = 4
    ff: int = 512
    positions: int = 512  # learned position embeddings; later positions share the last one
    fc: int = 200
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if min(self.layers, self.width, self.heads, self.ff, self.positions, self.fc) < 1:
            raise HarnessError("student.layers, width, heads, ff, positions and fc must be >= 1")
        if self.width % self.heads:
            raise HarnessError(f"student.width ({self.width}) must be a multiple of student.heads ({self.heads})")
        if not 0 <= self.dropout < 1:
            raise HarnessError("student.dropout must be in [0, 1)")


class Block(nn.Module):
    """x + attention(norm(x)), then x + feed-forward(norm(x))."""

    def __init__(self, width: int, heads: int, ff: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.ff = nn.Sequential(nn.Linear(width, ff), nn.GELU(), nn.Linear(ff, width))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """(B, T, W) x; (B, 1, 1, T) bias: 0 on tokens, a large negative number on padding."""
        batch, steps, width = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(batch, steps, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(width // self.heads) + bias, dim=-1)  # (B, h, T, T)
        x = x + self.drop(self.out((weights @ v).transpose(1, 2).reshape(batch, steps, width)))
        return x + self.drop(self.ff(self.norm2(x)))


class TransformerEncoder(nn.Module):
    """Words -> projection + positions -> blocks -> norm -> mean over the sentence's tokens."""

    calibration = "transformer"  # timed against one BERT layer (harness/speed/calibrate.py)

    def __init__(self, vocab_size: int, embed_dim: int, cfg: TransformerSettings) -> None:
        super().__init__()
        add_embeddings(self, vocab_size, embed_dim, multichannel=False)
        self.project = nn.Linear(embed_dim, cfg.width)
        self.positions = nn.Embedding(cfg.positions, cfg.width)
        nn.init.normal_(self.positions.weight, std=0.02)
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cfg.ff, cfg.dropout) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.width)
        self.out_dim = cfg.width

    def init_embeddings(self, vectors: np.ndarray) -> None:
        copy_vectors(self, vectors)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T) ids, (B,) lengths -> (B, width)."""
        valid = valid_positions(lengths.to(ids.device), ids.shape[1])  # (B, T)
        steps = torch.arange(ids.shape[1], device=ids.device).clamp(max=self.positions.num_embeddings - 1)
        x = self.project(self.embed(ids)) + self.positions(steps)
        bias = (~valid).to(x.dtype).mul(-1e9).view(ids.shape[0], 1, 1, ids.shape[1])
        for block in self.blocks:
            x = block(x, bias)
        return masked_mean(self.norm(x), valid)


def encoder(cfg: TransformerSettings, vocab_size: int, embed_dim: int) -> TransformerEncoder:
    return TransformerEncoder(vocab_size, embed_dim, cfg)


register("tiny_transformer", encoder, TransformerSettings,
         tiny={"layers": 1, "width": 16, "heads": 2, "ff": 16, "fc": 8, "epochs": 1})
