"""What the engine may ask of each kind of plugin, as `typing.Protocol`s: the only contract between
harness/ and students/, teachers/ or any package's plugins (registered as harness/core/plugins.py says).

What a plugin registers:
- a student: `registry.StudentSpec(arch, build, settings, distill, transfer, columns=...)`, where
  `build(settings, vocab_size, embed_dim, num_labels)` returns a `StudentModel` and `settings` is a
  frozen dataclass (`StudentSettings`);
- a teacher: `registry.TeacherPlugin(create, load)`, both returning a `Teacher`;
- a task: a `tasks.Task` (data files, text columns, labels, metrics by name), its metrics in
  `metrics.METRICS` with their direction;
- a timing reference: `registry.ReferenceSpec(build, reported, description)`, `build(num_labels)` a `Predictor`.

The engine reads nothing else of a plugin: no attribute of a student's modules (its `encoder`, its LSTM),
no teacher internals (its transformers model or tokenizer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

Texts = list[tuple[str, ...]]  # one tuple per example, one string per text column


@runtime_checkable
class StudentSettings(Protocol):
    """A student architecture's own settings: a frozen dataclass whose fields have defaults. A run's
    `student.<field>` reaches the fields it has; `__post_init__` refuses values that mean nothing
    (raise harness.core.errors.HarnessError naming `student.<field>`). Saved models record it whole."""

    __dataclass_fields__: dict


@runtime_checkable
class StudentModel(Protocol):
    """A student: a torch module. Word ids in, logits out; trained by the engine (harness/engine/distill.py).

    Optional methods (the engine checks with hasattr):
    - `init_embeddings(vectors)`: the run's initial word vectors, (vocab_size, embed_dim) float32, row 0
      padding (`student.embedding`: glove50, teacher, random, a vectors file). Without it, the model keeps its own.
    - `export_module() -> nn.Module`: what to export to ONNX, with the same inputs and output, when the
      model itself does not export as it is (e.g. a twin sharing its parameters) or an equivalent form runs
      faster (e.g. the bag's head folded into its tables: students/bag.py). Default: the model.
    - `finish_onnx(path, input_names)`: edit the exported file in place (e.g. feed sequence lengths to
      its LSTM nodes). The engine then checks the file against PyTorch (harness/engine/ort.py) and quantises
      it to int8; both are timed.
    """

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        """(ids (B, T) int64, lengths (B,) int64) per text column, in column order -> (B, num_labels) logits
        (one score for a regression task). Padding id is 0; every length is at least 1."""
        ...


@runtime_checkable
class Predictor(Protocol):
    """Anything scored and timed: a teacher, a trained student (wordmodel.StudentPredictor wraps a
    StudentModel with its vocabulary), an ONNX Runtime model, a timing reference."""

    def logits(self, texts: Texts, batch_size: int) -> np.ndarray:
        """(N, K) float32 logits, in input order."""
        ...

    def num_params(self) -> tuple[int, int]:
        """(all parameters, parameters outside embedding tables)."""
        ...

    def to(self, device: str | torch.device) -> Any:
        """Run on `device`; returns self."""
        ...


@runtime_checkable
class Teacher(Predictor, Protocol):
    """A fine-tunable teacher. Created by its TeacherPlugin's `create(TeacherConfig, num_labels)` and
    reloaded by `load(folder, max_length)` from what `finetune` saved in `out`."""

    mask_token: str  # what augmentation's masked words are given to it as

    def finetune(self, train: Any, select: Any, cfg: Any, seed: int, metrics: tuple[str, ...], out: Path) -> dict:
        """Fine-tune on `train` (tasks.Split), keep the best checkpoint on `select` by the task's first
        metric, save it in `out`; return facts for results.json (scores, history, steps)."""
        ...

    def word_vectors(self, words: list[str], mask_word: str) -> tuple[np.ndarray, np.ndarray]:
        """Static vectors for `words` (`embedding: teacher`, `export-transfer`), (len(words), D) float32,
        and a bool array: which words it knows whole (the coverage results record)."""
        ...

    def export_onnx(self, path: Path, check_texts: Texts) -> Path:
        """Write itself as ONNX at `path`, checked against PyTorch on `check_texts` (harness.engine.ort.export_checked)."""
        ...

    def onnx_predictor(self, path: Path) -> Predictor:
        """A Predictor running the ONNX file at `path` (its export, or the int8 form of it)."""
        ...
