"""ONNX Runtime backend: ONNX export of students and teachers (checked against PyTorch), dynamic int8
quantisation, and predictors with the torch predictors' interface (`logits`, `num_params`, `to`).

Export uses torch.onnx's TorchScript exporter (`dynamo=False`), which works offline with the installed
packages; the dynamo exporter needs `onnxscript`. Packed sequences do not export, so students go
through an export twin: a module sharing the student's parameters that gives its logits unpacked.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from torch import nn

from harness.batching import TokenIds, sorted_batches
from harness.errors import HarnessError
from harness.registry import STUDENTS
from harness.wordmodel import StudentPredictor, Vocab
from teachers.hf import HFTeacher

OPSET = 17
STUDENT_TOLERANCE = 1e-4  # max |ORT - torch| logit difference an export must meet
TEACHER_TOLERANCE = 1e-4  # measured on 200 SST-2 sentences: 1.1e-8 (hf_tiny), 6.5e-8 (MiniLM)
CHECK_BATCH_SIZE = 64  # batches of several lengths, so padding is part of the check


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


# Student architecture (StudentSpec.arch) -> its export twin. A twin takes (ids, lengths) per text
# column, in column order, and has a `columns` attribute; a pair student adds its own entry.
EXPORT_TWINS: dict[str, Callable[[nn.Module], nn.Module]] = {"bilstm": BiLSTMClassifierTwin}


def student_input_names(columns: int) -> list[str]:
    """`ids`, `lengths` for one text column; `ids_0`, `lengths_0`, `ids_1`, ... for more."""
    suffixes = [""] if columns == 1 else [f"_{c}" for c in range(columns)]
    return [f"{kind}{s}" for s in suffixes for kind in ("ids", "lengths")]


def export_student(predictor: StudentPredictor, path: Path, check_texts: list[tuple[str, ...]]) -> Path:
    """Export a student to ONNX (inputs `ids` (B, T), `lengths` (B,) int64; output `logits` (B, K)).

    Raises:
        HarnessError: no export twin for the architecture, or ORT's logits on `check_texts` differ
            from PyTorch's by more than STUDENT_TOLERANCE.
    """
    arch = STUDENTS.get(predictor.meta["student"]).arch
    if arch not in EXPORT_TWINS:
        raise HarnessError(f"no ONNX export for student architecture {arch!r} (have: {', '.join(EXPORT_TWINS)})")
    twin = EXPORT_TWINS[arch](predictor.model)
    example = (torch.ones(2, 3, dtype=torch.int64), torch.tensor([3, 2])) * twin.columns  # (B, T), (B,)
    axes = {n: {0: "batch", 1: "time"} if n.startswith("ids") else {0: "batch"} for n in student_input_names(twin.columns)}
    return _export_checked(twin, predictor, OrtStudent.from_predictor, example, axes, path, check_texts, STUDENT_TOLERANCE)


class TeacherLogits(nn.Module):
    """A transformers classifier taking its inputs positionally and returning only the logits."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names  # names: the tokenizer's outputs, in input order

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, inputs))).logits  # (B, K)


def export_teacher(teacher: HFTeacher, path: Path, check_texts: list[tuple[str, ...]]) -> Path:
    """Export an HFTeacher to ONNX: its tokenizer's inputs (B, S) int64 in, `logits` (B, K) out.

    Raises:
        HarnessError: ORT's logits on `check_texts` differ from PyTorch's by more than TEACHER_TOLERANCE.
    """
    batch = teacher.encode([("an example",), ("a longer example sentence",)])
    names = list(batch.keys())  # input_ids, [token_type_ids,] attention_mask
    example = tuple(batch[n] for n in names)  # (B, S) each
    axes = {n: {0: "batch", 1: "seq"} for n in names}
    module = TeacherLogits(teacher.model, names)
    return _export_checked(module, teacher, OrtTeacher.from_teacher, example, axes, path, check_texts, TEACHER_TOLERANCE)


def _export_checked(module: nn.Module, torch_predictor, make_ort: Callable, example: tuple, axes: dict, path: Path,
                    check_texts: list[tuple[str, ...]], tolerance: float) -> Path:
    """Export `module` (in eval mode) with inputs named and made dynamic by `axes` to a temp file;
    rename it to `path` once `make_ort(torch_predictor, tmp)` matches `torch_predictor` on `check_texts`."""
    model = torch_predictor.model
    if not check_texts:
        raise HarnessError("ONNX export needs at least one text to check the exported model against PyTorch")
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise HarnessError("ONNX export runs from a model on the CPU: move the predictor to cpu first")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    was_training = model.training
    try:
        module.eval()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and LSTM batch notes
            torch.onnx.export(module, example, str(tmp), dynamo=False, opset_version=OPSET, input_names=list(axes),
                              output_names=["logits"], dynamic_axes={**axes, "logits": {0: "batch"}})
        got = make_ort(torch_predictor, tmp).logits(check_texts, CHECK_BATCH_SIZE)  # (N, K)
        diff = float(np.abs(got - torch_predictor.logits(check_texts, CHECK_BATCH_SIZE)).max())
        if not diff <= tolerance:  # NaN fails too
            raise HarnessError(f"ONNX export ({type(module).__name__}) does not match PyTorch: max |logit difference| "
                               f"{diff:.3g} > {tolerance:g} on {len(check_texts)} texts")
        os.replace(tmp, path)
    finally:
        model.train(was_training)
        tmp.unlink(missing_ok=True)
    return path


def quantize_int8(src: Path, dst: Path) -> Path:
    """Dynamic int8 quantisation (QInt8 weights, activations quantised at run time) of an ONNX file.

    For a BiLSTM student ORT turns LSTM into DynamicQuantizeLSTM, Gemm (linear layers) into
    DynamicQuantizeLinear + MatMulInteger, and stores the embedding tables int8 (DequantizeLinear
    after each Gather); for a transformer, its MatMuls become MatMulInteger.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        quantize_dynamic(Path(src), tmp, weight_type=QuantType.QInt8)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


class OrtSession:
    """An ONNX file run by ONNX Runtime. The session is built lazily and rebuilt when the device or
    torch's thread count changes, so ORT uses the thread count the measurement fixed."""

    def __init__(self, path: Path) -> None:
        self.path, self.device, self._threads = Path(path), "cpu", 0
        self._session: ort.InferenceSession | None = None

    def to(self, device: str | torch.device) -> None:
        kind = str(device).split(":")[0]  # cuda:0 -> cuda
        if kind == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise HarnessError(f"CUDA is unavailable for ONNX Runtime (providers: {', '.join(ort.get_available_providers())})")
        if kind not in ("cpu", "cuda"):
            raise HarnessError(f"ONNX Runtime backend supports devices cpu and cuda, not {device!r}")
        self.device, self._session = kind, None

    @property
    def session(self) -> ort.InferenceSession:
        threads = torch.get_num_threads()
        if self._session is None or threads != self._threads:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.device == "cuda" else ["CPUExecutionProvider"]
            self._session, self._threads = ort.InferenceSession(str(self.path), opts, providers=providers), threads
        return self._session

    def run(self, arrays: dict[str, np.ndarray] | list[np.ndarray]) -> np.ndarray:
        """The (B, K) `logits` for the graph's inputs, by name (extra names ignored) or in order."""
        session = self.session
        names = [i.name for i in session.get_inputs()]
        feeds = dict(zip(names, arrays)) if isinstance(arrays, list) else {n: arrays[n] for n in names}
        return session.run(["logits"], feeds)[0]


class OrtPredictor:
    """What ORT predictors share: an ORT session, the torch model's parameter counts, `to`."""

    def __init__(self, onnx_path: Path, params: tuple[int, int] | None) -> None:
        self.runner, self.params = OrtSession(onnx_path), params

    def num_params(self) -> tuple[int, int]:
        """The torch model's (all, outside embedding tables) counts: the same parameters."""
        if self.params is None:
            raise HarnessError(f"{type(self).__name__}: parameter counts were not given (use its from_* constructor)")
        return self.params

    def to(self, device: str | torch.device) -> OrtPredictor:
        """Run on `device` (cpu, or cuda through CUDAExecutionProvider)."""
        self.runner.to(device)
        return self


class OrtStudent(OrtPredictor):
    """An exported (or quantised) student run by ONNX Runtime; text in, logits out as StudentPredictor
    does (same encoding, same length-sorted batches). `params`: the torch model's counts."""

    encode = StudentPredictor.encode  # the torch student's tokenisation, vocabulary and truncation

    def __init__(self, onnx_path: Path, vocab: Vocab, meta: dict, params: tuple[int, int] | None = None) -> None:
        super().__init__(onnx_path, params)
        self.vocab, self.meta = vocab, meta

    @classmethod
    def from_predictor(cls, predictor: StudentPredictor, onnx_path: Path) -> OrtStudent:
        return cls(onnx_path, predictor.vocab, predictor.meta, predictor.num_params())

    def logits_from_ids(self, ids: list[TokenIds], batch_size: int) -> np.ndarray:
        """(N, K) float32 logits in input order, from one TokenIds per text column."""
        lengths = sum(t.lengths for t in ids)
        out = np.zeros((len(ids[0]), self.meta["num_labels"]), dtype=np.float32)
        for idx in sorted_batches(lengths, batch_size):
            arrays = [t.numpy() for col in ids for t in col.pad(idx)]  # (B, T) ids, (B,) lengths per column
            out[idx] = self.runner.run(arrays)
        return out

    def logits(self, texts: list[tuple[str, ...]], batch_size: int = 256) -> np.ndarray:
        return self.logits_from_ids(self.encode(texts), batch_size)


class OrtTeacher(OrtPredictor):
    """An exported teacher run by ONNX Runtime; text in, logits out as HFTeacher does (same tokenizer
    call, same length-sorted batches). `params`: the torch model's counts."""

    encode = HFTeacher.encode  # the torch teacher's tokenizer call: truncation, dynamic padding

    def __init__(self, onnx_path: Path, tokenizer, max_length: int, num_labels: int,
                 params: tuple[int, int] | None = None) -> None:
        super().__init__(onnx_path, params)
        self.tokenizer, self.max_length, self.num_labels = tokenizer, max_length, num_labels

    @classmethod
    def from_teacher(cls, teacher: HFTeacher, onnx_path: Path) -> OrtTeacher:
        return cls(onnx_path, teacher.tokenizer, teacher.max_length, teacher.model.config.num_labels, teacher.num_params())

    def logits(self, texts: list[tuple[str, ...]], batch_size: int) -> np.ndarray:
        """(N, K) float32 logits in input order, computed in HFTeacher.logits' length order."""
        order = np.argsort([sum(len(s) for s in t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.num_labels), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            batch = self.encode([texts[i] for i in idx])  # (B, S) tensors
            out[idx] = self.runner.run({k: v.numpy() for k, v in batch.items()})
        return out
