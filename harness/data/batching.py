"""Length-bucketed batching and padding, shared by teacher fine-tuning and student training."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def bucketed_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar lengths: shuffle, sort within chunks of 50 batches, shuffle batches."""
    lengths = np.asarray(lengths)
    perm = rng.permutation(len(lengths))
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(perm), chunk):
        part = perm[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Deterministic batches in length order, for inference."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


RECURRENT_ROWS_CPU = 32  # rows per call of a recurrent student on a CPU (see recurrent_batches)


def recurrent_batches(lengths: Sequence[int], batch_size: int, device: str = "cpu") -> list[np.ndarray]:
    """A recurrent student's inference calls for a batch of `batch_size` texts: length-sorted, and on a CPU
    at most RECURRENT_ROWS_CPU rows each, since every row of a call is computed to the call's longest
    sequence (oneDNN's and ONNX Runtime's LSTMs both): calls of 512 random SST-2 sentences ran 4.9-5.2x
    slower than the same sentences in length-sorted calls of 32 (reports/student-backends.md). The
    logits are the same; a GPU takes the whole batch at once."""
    return sorted_batches(lengths, batch_size if str(device).startswith("cuda") else min(batch_size, RECURRENT_ROWS_CPU))


class TokenIds:
    """Many token-id sequences stored flat (one int32 array plus offsets), not as Python lists.

    Args:
        flat: all ids, concatenated.
        offsets: start of each sequence in `flat`, plus the end (length N + 1).
    """

    def __init__(self, flat: np.ndarray, offsets: np.ndarray) -> None:
        self.flat = flat
        self.offsets = offsets

    @classmethod
    def from_lists(cls, seqs: Sequence[Sequence[int]]) -> TokenIds:
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        flat = np.fromiter((i for s in seqs for i in s), dtype=np.int32, count=int(offsets[-1]))
        return cls(flat, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def pad(self, idx: Sequence[int], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """A padded (B, T) id tensor and the (B,) lengths for the sequences `idx`, without a Python loop
        over rows: every copied id is `flat[start of its row + its column]`, gathered at once."""
        idx = np.asarray(idx, dtype=np.int64)
        starts, lengths = self.offsets[idx], self.offsets[idx + 1] - self.offsets[idx]
        filled = np.arange(lengths.max(initial=0)) < lengths[:, None]  # (B, T): True where a row has a token
        out = np.full(filled.shape, pad_id, dtype=np.int64)
        out[filled] = self.flat[(starts[:, None] + np.arange(filled.shape[1]))[filled]]  # row-major: each row in order
        return torch.from_numpy(out), torch.from_numpy(lengths.astype(np.int64))


def text_lengths(texts: list[tuple[str, ...]]) -> list[int]:
    """Characters per example (all its sentences): the sort key of length-sorted inference batches."""
    return [sum(len(s) for s in t) for t in texts]
