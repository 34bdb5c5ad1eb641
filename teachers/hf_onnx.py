"""The `hf` teacher's ONNX recipe: its classifier exported with the tokenizer's inputs, and a predictor
that runs the file through ONNX Runtime with the torch teacher's tokenizer call and batch order. The
engine runs and checks the export (harness.engine.ort.export_checked); `HFTeacher.export_onnx` and
`HFTeacher.onnx_predictor` are how it asks for them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness.data.batching import sorted_batches, text_lengths
from harness.engine.ort import OrtPredictor, export_checked

TEACHER_TOLERANCE = 1e-4  # measured on 200 SST-2 sentences: 1.1e-8 (hf_tiny), 6.5e-8 (MiniLM)


class TeacherLogits(nn.Module):
    """A transformers classifier taking its inputs positionally and returning only the logits."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names  # names: the tokenizer's outputs, in input order

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, inputs))).logits  # (B, K)


def tokenize(tokenizer, max_length: int, texts: list[tuple[str, ...]]) -> dict:
    """A batch as the `hf` teacher reads it: pairs as one input (`tokenizer(a, b)`), truncated to
    `max_length` wordpieces, padded to the batch's longest, as (B, S) tensors."""
    return tokenizer(*zip(*texts), truncation=True, max_length=max_length, padding=True, return_tensors="pt")


def export_teacher(teacher, path: Path, check_texts: list[tuple[str, ...]]) -> Path:
    """Export an HFTeacher (teachers/hf.py) to ONNX: its tokenizer's inputs (B, S) int64 in, `logits` (B, K) out.

    Raises:
        HarnessError: ORT's logits on `check_texts` differ from PyTorch's by more than TEACHER_TOLERANCE.
    """
    batch = teacher.encode([("an example",), ("a longer example sentence",)])
    names = list(batch.keys())  # input_ids, [token_type_ids,] attention_mask
    example = tuple(batch[n] for n in names)  # (B, S) each
    axes = {n: {0: "batch", 1: "seq"} for n in names}
    module = TeacherLogits(teacher.model, names)
    return export_checked(module, teacher, lambda t, p: t.onnx_predictor(p), example, axes, path, check_texts, TEACHER_TOLERANCE)


class OrtTeacher(OrtPredictor):
    """An exported teacher run by ONNX Runtime; text in, logits out as HFTeacher does (same tokenizer
    call, same length-sorted batches). `params`: the torch model's counts."""

    def __init__(self, onnx_path: Path, tokenizer, max_length: int, num_labels: int,
                 params: tuple[int, int] | None = None) -> None:
        super().__init__(onnx_path, params)
        self.tokenizer, self.max_length, self.num_labels = tokenizer, max_length, num_labels

    @property
    def mask_token(self) -> str:
        return self.tokenizer.mask_token

    def encode(self, texts: list[tuple[str, ...]]) -> dict:
        """The torch teacher's tokenizer call: truncation, dynamic padding."""
        return tokenize(self.tokenizer, self.max_length, texts)

    def logits(self, texts: list[tuple[str, ...]], batch_size: int) -> np.ndarray:
        """(N, K) float32 logits in input order, computed in HFTeacher.logits' length order."""
        out = np.zeros((len(texts), self.num_labels), dtype=np.float32)
        for idx in sorted_batches(text_lengths(texts), batch_size):
            batch = self.encode([texts[i] for i in idx])  # (B, S) tensors
            out[idx] = self.runner.run({k: v.numpy() for k, v in batch.items()})
        return out
