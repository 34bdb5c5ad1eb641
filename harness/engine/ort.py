"""ONNX Runtime backend: ONNX export of students (checked against PyTorch), dynamic int8 quantisation,
and predictors with the torch predictors' interface (`logits`, `num_params`, `to`).

Export uses torch.onnx's TorchScript exporter (`dynamo=False`), which works offline with the installed
packages; the dynamo exporter needs `onnxscript`. A model owns its export recipe (harness/core/protocols.py):
the module to export (`export_module`, e.g. a twin that shares its parameters) and an edit of the
exported file (`finish_onnx`); this module only runs the recipe and checks the result against PyTorch.
A teacher exports itself the same way, through `export_checked` (teachers/hf.py).
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

from harness.core.errors import HarnessError
from harness.core.registry import STUDENTS
from harness.data.batching import TokenIds, recurrent_batches
from harness.engine.wordmodel import StudentPredictor, Vocab

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
    """Export a student to ONNX by its own recipe: inputs `ids` (B, T), `lengths` (B,) int64 per text
    column; output `logits` (B, K).

    Raises:
        HarnessError: ORT's logits on `check_texts` differ from PyTorch's by more than STUDENT_TOLERANCE.
    """
    model = predictor.model
    module = model.export_module() if hasattr(model, "export_module") else model
    columns = STUDENTS.get(predictor.meta["student"]).columns
    example = (torch.ones(2, 3, dtype=torch.int64), torch.tensor([3, 2])) * columns  # (B, T), (B,)
    # each column its own time axis (time, or time_0, time_1): ORT takes equal names to mean equal sizes
    axes = {n: {0: "batch", 1: f"time{n[3:]}"} if n.startswith("ids") else {0: "batch"} for n in student_input_names(columns)}
    finish = getattr(model, "finish_onnx", None)
    return export_checked(module, predictor, OrtStudent.from_predictor, example, axes, path, check_texts, STUDENT_TOLERANCE,
                          fix=None if finish is None else lambda p: finish(p, list(axes)))


def export_checked(module: nn.Module, torch_predictor, make_ort: Callable, example: tuple, axes: dict, path: Path,
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

    def __init__(self, onnx_path: Path, vocab: Vocab, meta: dict, params: tuple[int, int] | None = None,
                 calibration: str | None = None) -> None:
        super().__init__(onnx_path, params)
        self.vocab, self.meta, self.calibration = vocab, meta, calibration

    @classmethod
    def from_predictor(cls, predictor: StudentPredictor, onnx_path: Path) -> OrtStudent:
        return cls(onnx_path, predictor.vocab, predictor.meta, predictor.num_params(), predictor.calibration)

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
