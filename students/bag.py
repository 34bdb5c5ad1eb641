"""A bag of embeddings (fastText, Joulin et al. 2017; the deep averaging network, Iyyer et al. 2015) as a
student: the mean of the sentence's word embeddings and of its hashed-bigram embeddings, then the zoo's
head (dropout -> FC + ReLU -> linear). No recurrence, no convolution: the latency floor of the zoo.

Registered through students/zoo.py: `bag`, `bag_soft`, `bag_tiny` and the pair forms `siamese_bag`,
`siamese_bag_soft`, `siamese_bag_tiny`.

Bigrams: the pair of word ids (a, b) at positions t, t + 1 of the sentence goes to bucket
(a * 1,000,003 + b) mod `buckets`, an embedding table of its own (trained from zero, so training starts from
the mean of the word vectors). The words come from the run's initial vectors (`student.embedding`), in
one trainable copy.

No masks: padding's word row (0) and an extra bigram row (`buckets`, where every pair past the sentence's end
goes) are zero and get no gradient, so the sums over all positions are the sums over the sentence's own, and
the mean divides by its length plus its pairs. The same mean as masking, without two (B, T, D) products: on
ONNX Runtime int8 the encoder ran 1.6x faster than the masked form (SST-2 batches of 512; version 1).

Export: the single-sentence student goes to ONNX with the head's first layer folded into both tables
(`FoldedBag`; the mean is linear), so each lookup gathers `fc` numbers instead of D and the (D -> fc) product
is gone. On a 2-core Intel Xeon that took the bag's offline ONNX speed from about 81,000 to 102,000 sentences/s
(benchmarks/family_speed.py). The pair form cannot fold: its head reads h1 * h2 and |h1 - h2|.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from harness.core.errors import HarnessError
from students.zoo import add_embeddings, copy_vectors, register, valid_positions

PRIME = 1_000_003


@dataclass(frozen=True)
class BagSettings:
    """The bag-of-embeddings students' architecture (`student.buckets=32768`, ...)."""

    buckets: int = 32768  # hashed-bigram embeddings; 0: words only
    fc: int = 200
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.buckets < 0 or self.fc < 1:
            raise HarnessError("student.buckets must be >= 0 and student.fc >= 1")
        if not 0 <= self.dropout < 1:
            raise HarnessError("student.dropout must be in [0, 1)")


class BagEncoder(nn.Module):
    """The mean of the word and hashed-bigram embeddings of each sentence's own tokens."""

    def __init__(self, vocab_size: int, embed_dim: int, buckets: int) -> None:
        super().__init__()
        add_embeddings(self, vocab_size, embed_dim, multichannel=False)  # row 0 (padding): zero, no gradient
        self.bigrams = nn.Embedding(buckets + 1, embed_dim, padding_idx=buckets, sparse=True) if buckets else None
        if self.bigrams is not None:
            nn.init.zeros_(self.bigrams.weight)
        self.buckets = buckets
        self.out_dim = embed_dim

    def init_embeddings(self, vectors: np.ndarray) -> None:
        copy_vectors(self, vectors)
        self.embed.weight.data[0].zero_()  # padding adds nothing to the sum (the run's vectors keep it zero too)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T) ids, (B,) lengths -> (B, D)."""
        return bag_mean(self.embed, self.bigrams, self.buckets, ids, lengths)

    def fold_head(self, head: nn.Sequential) -> nn.Module:
        """The single-sentence student with this encoder, as ONNX gets it (zoo.SentenceStudent.export_module)."""
        return FoldedBag(self, head)


def bag_mean(words: nn.Embedding, bigrams: nn.Embedding | None, buckets: int, ids: torch.Tensor,
             lengths: torch.Tensor) -> torch.Tensor:
    """The mean of the rows of `words` at the (B, T) ids and of `bigrams` at their pairs' buckets: (B, D)."""
    lengths = lengths.to(ids.device)
    total, count = words(ids).sum(1), lengths  # padding's row is zero
    if bigrams is not None and ids.shape[1] > 1:
        pairs = valid_positions(lengths - 1, ids.shape[1] - 1)  # (B, T - 1)
        bucket = torch.where(pairs, (ids[:, :-1] * PRIME + ids[:, 1:]) % buckets, buckets)  # past the end: zero row
        total, count = total + bigrams(bucket).sum(1), count + (lengths - 1).clamp(min=0)
    return total / count.clamp(min=1).unsqueeze(-1).to(total.dtype)


class FoldedBag(nn.Module):
    """A trained single-sentence bag student with its first FC layer folded into both tables, for export.

    The mean is linear, so FC(mean of rows) = mean of FC's weight times each row, plus FC's bias: the tables
    become (rows, fc) wide instead of (rows, D), and the (D -> fc) matrix product is gone. Exact in eval mode
    (dropout off) up to float rounding; the export is checked against the unfolded student as every export is.
    Measured with benchmarks/family_speed.py and in harness runs: reports/zoo-quick/README.md (issue 22).
    """

    def __init__(self, encoder: BagEncoder, head: nn.Sequential) -> None:
        super().__init__()
        _, fc, _, self.out = head  # dropout, FC, ReLU, linear: zoo.head
        with torch.no_grad():
            self.words = nn.Embedding.from_pretrained(encoder.embed.weight @ fc.weight.T)  # (V, fc)
            self.bigrams = (None if encoder.bigrams is None
                            else nn.Embedding.from_pretrained(encoder.bigrams.weight @ fc.weight.T))  # (buckets + 1, fc)
        self.bias, self.buckets = nn.Parameter(fc.bias.detach().clone(), requires_grad=False), encoder.buckets

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(bag_mean(self.words, self.bigrams, self.buckets, ids, lengths) + self.bias))


def encoder(cfg: BagSettings, vocab_size: int, embed_dim: int) -> BagEncoder:
    return BagEncoder(vocab_size, embed_dim, cfg.buckets)


# version 1: the mean without masks (module docstring); its bigram table has one more (zero) row
register("bag", encoder, BagSettings, tiny={"buckets": 64, "fc": 8, "epochs": 4}, version=1)  # at 1 epoch: chance; 4 cost seconds
