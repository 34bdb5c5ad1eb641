"""Timing-only ELMo baseline: the original ELMo ("Original"/5.5B config) with a small classifier head.

The paper's baseline row is GLUE's "BiLSTM + ELMo" (90.4 on SST-2 test). ELMo's pretrained weights
are not available offline and speed does not depend on weight values, so this is the architecture
with seeded random weights, measured for size and latency only; its accuracy is only the reported one.

ELMo (following allennlp's `_ElmoCharacterEncoder` and `_ElmoBiLm`):
- each token becomes 50 character ids (UTF-8 bytes with begin/end-of-word markers); 16-d character
  embeddings (262 rows); width 1..7 convolutions with 32, 32, 64, 128, 256, 512, 1024 filters
  (2048 in all), each max-pooled over characters then ReLU; 2 highway layers; projection to 512.
- a biLM: two separate 2-layer LSTM stacks, one over the sentence and one over the reversed sentence
  (layer 2 of a direction sees only its own direction's layer 1, unlike torch's bidirectional
  stacking), each layer `nn.LSTM(512, 4096, proj_size=512)`, with a residual connection around layer 2.
- the ELMo vector is a softmax-weighted, gamma-scaled mix of three layers: the token layer duplicated
  to 1024, and each biLSTM layer as [forward, backward] (1024). `<S>`/`</S>` are added around every
  sentence and dropped after the biLM, as allennlp's `Elmo` does.

Parameters (original shape, 2 labels):
- character encoder 18,037,856 (of which the character embedding table 4,192);
- biLM LSTMs 4 x 18,907,136 = 75,628,544. allennlp's LSTM cell has one bias vector per gate set and
  torch's `nn.LSTM` has two (`b_ih`, `b_hh`), so torch counts 4 x 16,384 = 65,536 more; with a single
  bias ELMo is 93,600,864, the paper's 93.6M. Here the ELMo part is 93,666,400 (+0.07%), plus 4 scalar-mix weights.
- head 525,826; total 94,192,230 (0.6% over 93.6M).
ELMo also clips LSTM cells and projections to +-3; torch's LSTM does not, which changes no shape and
costs next to nothing, so timing is unaffected.

Classifier head, and what it means for timing: GLUE's baseline runs a 2 x 1500-d BiLSTM sentence
encoder over the ELMo vectors (about 84M more parameters, which the paper's 93.6M does not count).
Here the ELMo vectors are max-pooled over tokens and fed to GLUE's MLP classifier shape,
Linear(1024, 512) -> ReLU -> Linear(512, num_labels). The measured latency is therefore a lower
bound for GLUE's full BiLSTM + ELMo model. Pairs (several text columns) are read as one token sequence.

Registered references: `elmo` (original shape) and `elmo_tiny` (a few thousand parameters, for tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from harness.core.registry import REFERENCES, ReferenceSpec
from harness.data.augment import tokenize
from harness.data.batching import sorted_batches

# ELMo's character vocabulary: bytes 0..255, then these markers; every id is shifted by +1 so that
# 0 marks a padding token (a whole row of zeros); unused positions inside a word are PAD_CHAR + 1.
MAX_CHARS = 50
BOS_CHAR, EOS_CHAR, BOW_CHAR, EOW_CHAR, PAD_CHAR = 256, 257, 258, 259, 260
NUM_CHAR_IDS = 262


@dataclass(frozen=True)
class ElmoShape:
    """Sizes of an ELMo model and its head.

    Args:
        filters: (width, number of filters) per character convolution.
        highways: highway layers on the concatenated filter outputs.
        proj: token representation and LSTM projection width.
        cells: LSTM memory cells.
        char_dim: character embedding width.
        head: hidden width of the classifier MLP.
    """

    filters: tuple[tuple[int, int], ...]
    highways: int
    proj: int
    cells: int
    char_dim: int
    head: int


ORIGINAL = ElmoShape(
    filters=((1, 32), (2, 32), (3, 64), (4, 128), (5, 256), (6, 512), (7, 1024)),
    highways=2, proj=512, cells=4096, char_dim=16, head=512,
)
TINY = ElmoShape(filters=((1, 4), (2, 8)), highways=1, proj=16, cells=32, char_dim=4, head=8)


def char_ids(chars: Sequence[int]) -> list[int]:
    """One token's 50 character ids: BOW, up to 48 characters, EOW, padding; all shifted by +1."""
    chars = list(chars)[: MAX_CHARS - 2]
    ids = [BOW_CHAR, *chars, EOW_CHAR] + [PAD_CHAR] * (MAX_CHARS - 2 - len(chars))
    return [c + 1 for c in ids]


BOS_IDS, EOS_IDS = char_ids([BOS_CHAR]), char_ids([EOS_CHAR])


def word_char_ids(word: str) -> list[int]:
    """A word's character ids from its UTF-8 bytes."""
    return char_ids(word.encode("utf-8"))


def sentence_char_ids(text: tuple[str, ...]) -> list[list[int]]:
    """`<S>`, the tokens of every text column, `</S>`; an empty text is one empty word."""
    tokens = [token for column in text for token in tokenize(column)] or [""]
    return [BOS_IDS, *(word_char_ids(t) for t in tokens), EOS_IDS]


class CharEncoder(nn.Module):
    """Character ids -> token vectors: embeddings, convolutions max-pooled then ReLU, highways, projection."""

    def __init__(self, shape: ElmoShape) -> None:
        super().__init__()
        self.embed = nn.Embedding(NUM_CHAR_IDS, shape.char_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(shape.char_dim, n, width) for width, n in shape.filters)
        width = sum(n for _, n in shape.filters)
        self.highways = nn.ModuleList(nn.Linear(width, 2 * width) for _ in range(shape.highways))
        self.projection = nn.Linear(width, shape.proj)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        batch, steps, max_chars = chars.shape
        x = self.embed(chars.reshape(batch * steps, max_chars)).transpose(1, 2)  # (B*T, D, C)
        x = torch.cat([torch.relu(conv(x).amax(-1)) for conv in self.convs], -1)  # (B*T, F)
        for highway in self.highways:
            nonlinear, gate = highway(x).chunk(2, -1)  # (B*T, F) each
            gate = torch.sigmoid(gate)
            x = gate * x + (1 - gate) * torch.relu(nonlinear)  # (B*T, F)
        return self.projection(x).reshape(batch, steps, -1)  # (B, T, P)


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence within its own length; padding positions stay where they are."""
    steps = torch.arange(x.shape[1], device=x.device)  # (T,)
    index = lengths.to(x.device).unsqueeze(1) - 1 - steps  # (B, T)
    index = torch.where(index >= 0, index, steps)  # (B, T)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))  # (B, T, P)


class BiLM(nn.Module):
    """ELMo's biLM: the character encoder and two separate 2-layer LSTM stacks, one per direction."""

    def __init__(self, shape: ElmoShape) -> None:
        super().__init__()
        self.chars = CharEncoder(shape)

        def stack() -> nn.ModuleList:
            return nn.ModuleList(nn.LSTM(shape.proj, shape.cells, proj_size=shape.proj, batch_first=True) for _ in range(2))

        self.forward_layers = stack()
        self.backward_layers = stack()

    @staticmethod
    def run(layers: nn.ModuleList, x: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's outputs over packed sequences; layers after the first add their input."""
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        outputs: list[PackedSequence] = []
        for i, lstm in enumerate(layers):
            out, _ = lstm(packed)
            if i > 0:
                out = out._replace(data=out.data + packed.data)  # (sum of lengths, P)
            outputs.append(out)
            packed = out
        return [pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0] for out in outputs]

    def forward(self, chars: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
        """The three ELMo layers, each (B, T, 2P), for character ids (B, T, 50) and lengths (B,) on CPU."""
        tokens = self.chars(chars)  # (B, T, P)
        ahead = self.run(self.forward_layers, tokens, lengths)  # 2 x (B, T, P)
        behind = self.run(self.backward_layers, reverse_padded(tokens, lengths), lengths)  # 2 x (B, T, P)
        behind = [reverse_padded(h, lengths) for h in behind]  # 2 x (B, T, P)
        return [torch.cat([tokens, tokens], -1), *(torch.cat([f, b], -1) for f, b in zip(ahead, behind))]


class ElmoClassifier(nn.Module):
    """ELMo vectors (scalar mix of the biLM layers) -> max over tokens -> MLP -> logits."""

    def __init__(self, shape: ElmoShape, num_labels: int) -> None:
        super().__init__()
        self.bilm = BiLM(shape)
        self.mix_weights = nn.Parameter(torch.zeros(3))
        self.gamma = nn.Parameter(torch.ones(()))
        self.head = nn.Sequential(nn.Linear(2 * shape.proj, shape.head), nn.ReLU(), nn.Linear(shape.head, num_labels))

    def forward(self, chars: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits (B, K) for character ids (B, T, 50) of `<S>` ... `</S>` and lengths (B,) on CPU."""
        layers = self.bilm(chars, lengths)  # 3 x (B, T, 2P)
        weights = torch.softmax(self.mix_weights, 0)  # (3,)
        elmo = self.gamma * sum(w * h for w, h in zip(weights, layers))  # (B, T, 2P)
        steps = torch.arange(chars.shape[1], device=chars.device)  # (T,)
        words = (steps >= 1) & (steps < lengths.to(chars.device).unsqueeze(1) - 1)  # (B, T) without <S>, </S>
        pooled = elmo.masked_fill(~words.unsqueeze(-1), float("-inf")).amax(1)  # (B, 2P)
        return self.head(pooled)  # (B, K)


class ElmoPredictor:
    """Tokenises, maps words to character ids, and runs the classifier in length-sorted padded batches."""

    calibration = "recurrent"  # a character CNN and biLSTMs: timed against harness/speed/calibrate.py's BiLSTM

    def __init__(self, model: ElmoClassifier) -> None:
        self.model = model.eval()
        self.device = "cpu"

    def to(self, device: str) -> ElmoPredictor:
        self.model.to(device)
        self.device = device
        return self

    def num_params(self) -> tuple[int, int]:
        """(all parameters, all but the character embedding table)."""
        total = sum(p.numel() for p in self.model.parameters())
        return total, total - self.model.bilm.chars.embed.weight.numel()

    @torch.inference_mode()
    def logits(self, texts: list[tuple[str, ...]], batch_size: int) -> np.ndarray:
        """Logits (N, K) for every text, computed in length-sorted batches, returned in input order."""
        self.model.eval()
        sentences = [np.asarray(sentence_char_ids(t), dtype=np.int64) for t in texts]  # N x (T_i, 50)
        lengths = [len(s) for s in sentences]
        out = np.zeros((len(texts), self.model.head[-1].out_features), dtype=np.float32)
        for idx in sorted_batches(lengths, batch_size):
            chars = np.zeros((len(idx), max(lengths[i] for i in idx), MAX_CHARS), dtype=np.int64)  # (B, T, 50)
            for row, i in enumerate(idx):
                chars[row, : lengths[i]] = sentences[i]
            batch_lengths = torch.tensor([lengths[i] for i in idx])  # (B,) stays on CPU for packing
            out[idx] = self.model(torch.from_numpy(chars).to(self.device), batch_lengths).float().cpu().numpy()
        return out


def build(shape: ElmoShape, num_labels: int) -> ElmoPredictor:
    """An ELMo classifier of `shape` with seeded random weights, in eval mode."""
    torch.manual_seed(0)
    return ElmoPredictor(ElmoClassifier(shape, num_labels))


def elmo(num_labels: int) -> ElmoPredictor:
    """The original ELMo (93.6M) with the max-pool + MLP head."""
    return build(ORIGINAL, num_labels)


def elmo_tiny(num_labels: int) -> ElmoPredictor:
    """A tiny ELMo of the same structure, for tests."""
    return build(TINY, num_labels)


REFERENCES.add("elmo", ReferenceSpec(
    elmo,
    reported={"sst2": ("GLUE test, GLUE baseline BiLSTM+ELMo", 90.4)},
    description="original ELMo (char CNN + 2-layer 4096/512 biLM), random weights, max-pool + MLP head "
    "(timing is a lower bound of GLUE's BiLSTM+ELMo)",
))
REFERENCES.add("elmo_tiny", ReferenceSpec(elmo_tiny, description="tiny ELMo of the same structure, for tests"))
