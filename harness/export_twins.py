"""Export twins: modules that share a student's parameters and compute its logits without packed
sequences, which ONNX export cannot trace. The forward LSTM reads the padded batch, the backward
one each sequence reversed within its own length; both are read at position length - 1.

`EXPORT_TWINS` maps a student architecture (StudentSpec.arch) to its twin. A twin takes (ids,
lengths) per text column, in column order, and has a `columns` attribute.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from harness.errors import HarnessError


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each sequence of a padded (B, T, D) batch reversed within its own length; padding stays put."""
    pos = torch.ones_like(x[:, :, 0], dtype=torch.int64).cumsum(1) - 1  # (B, T)
    last = (lengths - 1).unsqueeze(1)  # (B, 1)
    idx = torch.where(pos <= last, last - pos, pos)  # (B, T)
    return torch.gather(x, 1, idx.unsqueeze(-1).expand_as(x))  # (B, T, D)


def at_last_step(out: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The (B, H) outputs at position length - 1 of a (B, T, H) batch."""
    idx = (lengths - 1).view(-1, 1, 1).expand(-1, 1, out.shape[-1])  # (B, 1, H)
    return torch.gather(out, 1, idx)[:, 0]  # (B, H)


def one_direction(lstm: nn.LSTM, suffix: str) -> nn.LSTM:
    """A unidirectional LSTM sharing one direction's parameters ("" forward, "_reverse" backward)."""
    if lstm.num_layers != 1 or not lstm.batch_first or lstm.proj_size:
        raise HarnessError("ONNX export supports one-layer, batch-first LSTMs without projection")
    twin = nn.LSTM(lstm.input_size, lstm.hidden_size, bias=lstm.bias, batch_first=True)
    for name in ("weight_ih_l0", "weight_hh_l0", *(("bias_ih_l0", "bias_hh_l0") if lstm.bias else ())):
        setattr(twin, name, getattr(lstm, name + suffix))
    return twin


class BiLSTMEncoderTwin(nn.Module):
    """`students.bilstm.BiLSTMEncoder` unpacked: the forward LSTM reads the padded batch, the backward
    one each sequence reversed within its length; both are read at length - 1."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.embed, self.static = encoder.embed, encoder.static
        self.forward_lstm = one_direction(encoder.lstm, "")
        self.backward_lstm = one_direction(encoder.lstm, "_reverse")

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)  # (B, T, E)
        if self.static is not None:
            x = torch.cat([x, self.static(ids)], dim=-1)  # (B, T, 2E)
        h_fwd = at_last_step(self.forward_lstm(x)[0], lengths)  # (B, H)
        h_bwd = at_last_step(self.backward_lstm(reverse_within_length(x, lengths))[0], lengths)  # (B, H)
        return torch.cat([h_fwd, h_bwd], dim=-1)  # (B, 2H)


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
