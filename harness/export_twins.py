"""Export twins: modules that share a student's parameters and compute its logits as one ONNX LSTM
node per sentence column. The student runs each direction as its own call, the backward one over
sentences reversed within their lengths (students/bilstm.py); the twin runs the bidirectional LSTM
over the padded batch, and each sequence's length reaches the exported node afterwards
(harness.ort.feed_lengths), so ONNX Runtime stops each direction at the sequence's own end.

`EXPORT_TWINS` maps a student architecture (StudentSpec.arch) to its twin. A twin takes (ids,
lengths) per text column, in column order, and has a `columns` attribute.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from harness.errors import HarnessError


class BiLSTMEncoderTwin(nn.Module):
    """`students.bilstm.BiLSTMEncoder` for export: the bidirectional LSTM over the padded batch,
    its last states (h_n) concatenated. Traced as it is, h_n would include padding; harness.ort's
    `feed_lengths` then gives the exported ONNX LSTM each sequence's length (`sequence_lens`), with
    which ONNX Runtime stops each direction at the sequence's own end."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        lstm = encoder.lstm
        if lstm.num_layers != 1 or not lstm.batch_first or lstm.proj_size or not lstm.bidirectional:
            raise HarnessError("ONNX export supports one-layer, batch-first, bidirectional LSTMs without projection")
        self.encoder = encoder

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.encoder.lstm(self.encoder.embed_inputs(ids))[1][0]  # (2, B, H): forward and backward last states
        return torch.cat([h[0], h[1]], dim=-1)  # (B, 2H)


class BiLSTMClassifierTwin(nn.Module):
    """`students.bilstm.BiLSTMClassifier` for export: one text column, (ids, lengths) -> logits."""

    columns = 1

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.encoder = BiLSTMEncoderTwin(model.encoder)
        self.head = model.head

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(ids, lengths))  # (B, K)


class SiameseBiLSTMTwin(nn.Module):
    """`students.siamese.SiameseBiLSTM` for export: two text columns, (ids_0, lengths_0, ids_1,
    lengths_1) -> logits. One encoder twin (the shared weights) encodes each sentence in turn."""

    columns = 2

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.encoder = BiLSTMEncoderTwin(model.encoder)
        self.head = model.head
        self.features = model.features  # [h1, h2, h1 * h2, |h1 - h2|], the student's own function

    def forward(self, ids_0: torch.Tensor, lengths_0: torch.Tensor, ids_1: torch.Tensor,
                lengths_1: torch.Tensor) -> torch.Tensor:
        h1 = self.encoder(ids_0, lengths_0)  # (B, 2H)
        h2 = self.encoder(ids_1, lengths_1)  # (B, 2H)
        return self.head(self.features(h1, h2))  # (B, K)


EXPORT_TWINS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "bilstm": BiLSTMClassifierTwin,
    "siamese_bilstm": SiameseBiLSTMTwin,
}
