"""What every word-level student shares: the vocabulary, saving/loading, and text-in/logits-out
prediction. Concrete architectures live in students/ and only build torch modules."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from harness.core.config import settings_of
from harness.core.registry import STUDENTS
from harness.data.batching import TokenIds, recurrent_batches
from harness.data.text import WordIds, encode_many

PAD, UNK = "<pad>", "<unk>"


class Vocab:
    """Word vocabulary: index 0 is padding, 1 unknown words."""

    def __init__(self, words: list[str]) -> None:
        self.itos = [PAD, UNK, *[w for w in words if w not in (PAD, UNK)]]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def from_texts(cls, columns: list[list[str]]) -> Vocab:
        """Every word of space-tokenised `columns`, most frequent first (ties alphabetical)."""
        counts = Counter(w for col in columns for s in col for w in s.split(" "))
        return cls([w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))])

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str], max_tokens: int) -> list[int]:
        ids = [self.stoi.get(t, 1) for t in tokens[:max_tokens]]
        return ids or [1]  # an empty sentence still gets one (unknown) step

    @cached_property
    def word_ids(self) -> WordIds:
        return WordIds(self.stoi, unk=1)

    def encode_texts(self, texts: Sequence[str], max_tokens: int) -> TokenIds:
        """Raw sentences' ids: `encode(tokenize(text), max_tokens)` for each, computed a chunk at a time."""
        return encode_many(texts, self.word_ids, max_tokens)


def count_params(model: nn.Module) -> tuple[int, int]:
    """(all parameters, parameters outside embedding tables), frozen ones included."""
    total = sum(p.numel() for p in model.parameters())
    emb = sum(p.numel() for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters())
    return total, total - emb


class StudentPredictor:
    """A trained student with its vocabulary: raw text in, logits out.

    Args:
        model: takes (ids, lengths) per text column, returns (B, K) logits.
        vocab: its word vocabulary.
        meta: what rebuilds it, saved as config.json: `student` (its registered name), `settings` (its
            architecture's settings dataclass, whole), `embed_dim`, `num_labels`, `max_tokens`.
    """

    def __init__(self, model: nn.Module, vocab: Vocab, meta: dict) -> None:
        self.model = model.eval()
        self.vocab = vocab
        self.meta = meta
        self.device = str(next(model.parameters()).device)

    @property
    def calibration(self) -> str | None:
        """The calibration workload its timings are measured against (harness/speed/calibrate.py): the
        model's own `calibration` (a transformer student says `transformer`), else the default (recurrent)."""
        return getattr(self.model, "calibration", None)

    def to(self, device: str | torch.device) -> StudentPredictor:
        """Run on `device` (cpu, cuda); inputs follow the model there."""
        self.model.to(device)
        self.device = str(device)
        return self

    def encode(self, texts: list[tuple[str, ...]]) -> list[TokenIds]:
        """One TokenIds per text column: NLTK's word tokens (harness/data/text.py), a whole column at once."""
        columns = [[t[i] for t in texts] for i in range(len(texts[0]))] if texts else []
        return [self.vocab.encode_texts(col, self.meta["max_tokens"]) for col in columns]

    @torch.inference_mode()
    def logits_from_ids(self, ids: list[TokenIds], batch_size: int) -> np.ndarray:
        self.model.eval()
        lengths = sum(t.lengths for t in ids)
        out = np.zeros((len(ids[0]), self.meta["num_labels"]), dtype=np.float32)
        for idx in recurrent_batches(lengths, batch_size, self.device):
            inputs = [t.to(self.device) for col in ids for t in col.pad(idx)]
            out[idx] = self.model(*inputs).float().cpu().numpy()
        return out

    def logits(self, texts: list[tuple[str, ...]], batch_size: int = 256) -> np.ndarray:
        return self.logits_from_ids(self.encode(texts), batch_size)

    def num_params(self) -> tuple[int, int]:
        return count_params(self.model)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"))
        (folder / "vocab.json").write_text(json.dumps(self.vocab.itos))
        (folder / "config.json").write_text(json.dumps(self.meta, indent=2, sort_keys=True))


def load_student(folder: Path) -> StudentPredictor:
    """A student saved by `StudentPredictor.save`, rebuilt through the registry with the settings it
    saved (a folder saved before settings had their own entry holds them beside the other facts)."""
    meta = json.loads((folder / "config.json").read_text())
    vocab = Vocab(json.loads((folder / "vocab.json").read_text()))
    spec = STUDENTS.get(meta["student"])
    settings = settings_of(spec.settings, meta.get("settings", meta), f"{folder / 'config.json'}: settings")
    model = spec.build(settings, len(vocab), meta["embed_dim"], meta["num_labels"])
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return StudentPredictor(model, vocab, meta)
