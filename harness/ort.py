"""ONNX Runtime backend: ONNX export of students and teachers (checked against PyTorch), dynamic int8
quantisation, and predictors with the torch predictors' interface (`logits`, `num_params`, `to`).

Export uses torch.onnx's TorchScript exporter (`dynamo=False`), which works offline with the installed
packages; the dynamo exporter needs `onnxscript`. Packed sequences do not export, so students go
through an export twin (harness/export_twins.py): a module sharing the student's parameters that
gives its logits unpacked.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from torch import nn

from harness.batching import TokenIds, recurrent_batches, sorted_batches
from harness.errors import HarnessError
from harness.export_twins import EXPORT_TWINS
from harness.registry import STUDENTS
from harness.wordmodel import StudentPredictor, Vocab
from teachers.hf import HFTeacher, text_lengths

OPSET = 17
STUDENT_TOLERANCE = 1e-4  # max |ORT - torch| logit difference an export must meet
TEACHER_TOLERANCE = 1e-4  # measured on 200 SST-2 sentences: 1.1e-8 (hf_tiny), 6.5e-8 (MiniLM)
CHECK_BATCH_SIZE = 64  # batches of several lengths, so padding is part of the check
CHECK_TEXTS = 1000  # an export is checked on the first 1,000 texts it is given (QQP's 20,000 dev pairs took minutes)


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
    # each column its own time axis (time, or time_0, time_1): ORT takes equal names to mean equal sizes
    axes = {n: {0: "batch", 1: f"time{n[3:]}"} if n.startswith("ids") else {0: "batch"}
            for n in student_input_names(twin.columns)}
    return _export_checked(twin, predictor, OrtStudent.from_predictor, example, axes, path, check_texts, STUDENT_TOLERANCE,
                           fix=lambda p: feed_lengths(p, list(axes)))


def feed_lengths(path: Path, inputs: list[str]) -> None:
    """Give the k-th LSTM node of the ONNX file at `path` the k-th `lengths*` graph input (cast to int32)
    as its `sequence_lens`, restoring inputs the tracer dropped as unused, in `inputs`' order (ORT
    predictors feed inputs by position). Each column's encoder call is one LSTM node, in column order;
    ONNX Runtime then stops each direction at every sequence's own end (measured: 7,377 vs 6,483 SST-2
    sentences/s for two one-direction LSTMs over the padding with a reversing gather, the export twin
    used before; 1 thread, batch 512).

    Raises:
        HarnessError: not one LSTM node per text column.
    """
    model = onnx.load(str(path))
    lengths = [name for name in inputs if name.startswith("lengths")]
    nodes = list(model.graph.node)
    lstms = [n for n in nodes if n.op_type == "LSTM"]
    if len(lstms) != len(lengths):
        raise HarnessError(f"ONNX export: {len(lstms)} LSTM node(s) for {len(lengths)} text column(s)")
    present = {i.name: i for i in model.graph.input}
    graph_inputs = [present.get(name) or onnx.helper.make_tensor_value_info(name, onnx.TensorProto.INT64, ["batch"])
                    for name in inputs]
    del model.graph.input[:]
    model.graph.input.extend(graph_inputs)
    for node, name in zip(lstms, lengths):
        cast = onnx.helper.make_node("Cast", [name], [f"{name}_int32_{node.name}"], to=onnx.TensorProto.INT32)
        node_inputs = [*node.input, *[""] * (5 - len(node.input))]
        node_inputs[4] = cast.output[0]  # LSTM inputs: X, W, R, B, sequence_lens, initial_h, initial_c, P
        del node.input[:]
        node.input.extend(node_inputs)
        nodes.insert(nodes.index(node), cast)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, str(path))


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
                    check_texts: list[tuple[str, ...]], tolerance: float, fix: Callable[[Path], None] | None = None) -> Path:
    """Export `module` (in eval mode) with inputs named and made dynamic by `axes` to a temp file,
    edited by `fix` if given; rename it to `path` once `make_ort(torch_predictor, tmp)` matches
    `torch_predictor` on the first CHECK_TEXTS of `check_texts`."""
    model, check_texts = torch_predictor.model, check_texts[:CHECK_TEXTS]
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
        if fix is not None:
            fix(tmp)
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
    direct = dst.with_name(f".{dst.name}.{os.getpid()}.direct.tmp")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a pre-processing tip (a WARNING) on every call
    try:
        quantize_dynamic(prepare_for_quantization(Path(src), direct), tmp, weight_type=QuantType.QInt8)
        os.replace(tmp, dst)
    finally:
        root.setLevel(level)
        tmp.unlink(missing_ok=True)
        direct.unlink(missing_ok=True)
    return dst


def prepare_for_quantization(src: Path, dst: Path) -> Path:
    """`src`, or a copy at `dst` that quantize_dynamic handles, for a pair student whose one encoder
    runs twice (the exporter stores each weight once):

    1. Identity nodes on initializers go (their users read the initializer itself): quantize_dynamic
       only quantises ops that read initializers directly, so a second use would stay fp32.
    2. Each LSTM node gets its own copy of its weights: quantize_dynamic rewrites LSTM weights per
       node, and two LSTM nodes on one weight broke the int8 model (QQP dev 76.95 fp32 -> 52.08 int8
       shared, 74.50 vs 74.33 fp32 unshared, on 600 pairs). Embedding tables stay shared.
    """
    model = onnx.load(str(src))
    weights = {t.name: t for t in model.graph.initializer}
    alias = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Identity" and n.input[0] in weights}
    nodes = [n for n in model.graph.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    for node in nodes:
        node.input[:] = [alias.get(name, name) for name in node.input]
    used, copies = set(), []
    for node in (n for n in nodes if n.op_type == "LSTM"):
        for k, name in enumerate(node.input):
            if name in weights and name in used:
                copy = onnx.TensorProto()
                copy.CopyFrom(weights[name])
                copy.name = node.input[k] = f"{name}.{node.name}"
                copies.append(copy)
            used.add(name)
    if not alias and not copies:
        return src
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(copies)
    onnx.save(model, str(dst))
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
        for idx in recurrent_batches(lengths, batch_size, self.runner.device):
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

    @property
    def mask_token(self) -> str:
        return self.tokenizer.mask_token

    @classmethod
    def from_teacher(cls, teacher: HFTeacher, onnx_path: Path) -> OrtTeacher:
        return cls(onnx_path, teacher.tokenizer, teacher.max_length, teacher.model.config.num_labels, teacher.num_params())

    def logits(self, texts: list[tuple[str, ...]], batch_size: int) -> np.ndarray:
        """(N, K) float32 logits in input order, computed in HFTeacher.logits' length order."""
        out = np.zeros((len(texts), self.num_labels), dtype=np.float32)
        for idx in sorted_batches(text_lengths(texts), batch_size):
            batch = self.encode([texts[i] for i in idx])  # (B, S) tensors
            out[idx] = self.runner.run({k: v.numpy() for k, v in batch.items()})
        return out
