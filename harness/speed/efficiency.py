"""Parameters and latency of one model on every backend and device the run asks for.

Which variants a model gets: every model runs on PyTorch eager; the teacher and the students also
on ONNX Runtime (exported next to the saved model, checked against PyTorch on real dev sentences);
students also as dynamic-int8 ONNX, whose dev scores are recorded beside fp32's. On CUDA (when
present) PyTorch runs fp32 and, for transformers, the autocast dtype. All timing is harness.speed.measure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import onnxruntime
import torch

from harness.core import memory
from harness.core.config import MeasureConfig
from harness.data.tasks import Split
from harness.engine import manifest
from harness.speed import calibrate, measure

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}


def cuda_note(cfg: MeasureConfig) -> str | None:
    """Why CUDA is not measured, or None when it is."""
    if "cuda" not in cfg.devices:
        return "cuda: not requested (measure.devices)"
    return None if torch.cuda.is_available() else "cuda: no CUDA device on this machine; GPU timings skipped"


def variants(kind: str, predictor, cfg: MeasureConfig) -> list[tuple[str, str, str]]:
    """(backend, device, dtype) triples to time for a model of `kind` (teacher, student, reference)."""
    onnx = {"teacher": ("onnx",), "student": ("onnx", "onnx-int8")}.get(kind, ())
    if hasattr(predictor, "members"):  # a teacher ensemble: several models, timed together on PyTorch only
        onnx = ()
    backends = [b for b in cfg.backends if b == "torch" or b in onnx]
    out = [(b, "cpu", "int8" if b.endswith("int8") else "fp32") for b in backends]
    if cuda_note(cfg) is None:
        out += [("torch", "cuda", "fp32")]
        if hasattr(predictor, "autocast") and cfg.gpu_autocast != "none":
            out += [("torch", "cuda", cfg.gpu_autocast)]
        if "onnx" in backends and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            out += [("onnx", "cuda", "fp32")]
    return out


def backend_predictor(predictor, kind: str, backend: str, folder: Path, check: list[tuple]):
    """`predictor` itself for torch; otherwise its ONNX export (made once, in `folder`)."""
    from harness.engine import ort

    if backend == "torch":
        return predictor
    fp32 = folder / "model.onnx"

    def made(path: Path, make) -> Path:  # an export is reused only when the folder's manifest lists it
        if not manifest.lists(folder, path.name):
            make(path)
            manifest.add(folder, path.name)
        return path

    if kind == "teacher":
        return predictor.onnx_predictor(made(fp32, lambda p: predictor.export_onnx(p, check)))
    made(fp32, lambda p: ort.export_student(predictor, p, check))
    if backend == "onnx-int8":
        int8 = made(folder / "model.int8.onnx", lambda p: ort.quantize_int8(fp32, p))
        return ort.OrtStudent.from_predictor(predictor, int8)
    return ort.OrtStudent.from_predictor(predictor, fp32)


def on_device(predictor, device: str, dtype: str):
    """Move a torch predictor (or pick the ORT provider) for `device`, autocasting transformers."""
    if dtype in ("bf16", "fp16"):
        return predictor.to(device, AUTOCAST[dtype])
    return predictor.to(device)


def time_one(predictor, device: str, dev: Split, train: Split, kind: str, cfg: MeasureConfig,
             calibrated: bool = True) -> dict:
    """Both regimes for one predictor on one device: batch 1 with `interactive_threads` (one request
    per core, as a server runs; also far steadier than 2 threads for sub-millisecond calls), the
    offline regime with `threads`. Each regime records what else ran meanwhile (`conditions`) and,
    when `calibrated` and on the CPU, the time of the model's calibration workload just around it
    (harness/speed/calibrate.py)."""
    n_inter, n_off = sizes(kind, cfg, train)
    workload = calibrate.family(predictor, kind) if device == "cpu" and calibrated else None

    def timed(regime: str, run: Callable[[], dict]) -> dict:
        with measure.conditions() as conditions:
            stats = calibrate.around(workload, regime, run) if workload else run()
        return {**stats, "conditions": conditions}

    with measure.threads_for(cfg.interactive_threads or cfg.threads) as threads:
        inter = timed("interactive", lambda: measure.interactive(predictor.logits, dev.texts[:n_inter],
                                                                 min(cfg.warmup, n_inter), device, cfg.interactive_passes))
    with measure.threads_for(cfg.threads) as off_threads:
        off = timed("offline", lambda: time_offline(predictor, train.texts[:n_off], kind, device, cfg))
    return {"interactive": {**inter, "threads": threads}, "offline": {**off, "threads": off_threads}}


def time_offline(predictor, texts: list, kind: str, device: str, cfg: MeasureConfig) -> dict:
    """The offline regime as `cfg` sets it; references (the slowest models) warm up on 64 sentences."""
    return measure.offline(predictor.logits, texts, cfg.offline_batch, warmup_n=64 if kind == "reference" else None,
                           device=device, min_calls=cfg.offline_min_calls, min_s=cfg.offline_min_s, max_s=cfg.offline_max_s)


def sizes(kind: str, cfg: MeasureConfig, train: Split) -> tuple[int, int]:
    """(batch-1 sentences, offline sentences) for a model of `kind`."""
    if kind == "reference":
        return cfg.reference_interactive_n, cfg.reference_offline_n
    if kind == "teacher":
        return cfg.interactive_n, cfg.teacher_offline_n
    return cfg.interactive_n, cfg.offline_n or len(train)


def measure_model(name: str, kind: str, predictor, cfg: MeasureConfig, dev: Split, train: Split,
                  folder: Path | None, score: Callable | None = None) -> dict:
    """Parameters and every (backend, device, dtype) timing of one model.

    Args:
        name: for progress lines.
        kind: teacher, student or reference.
        predictor: the PyTorch predictor (logits, num_params, to).
        folder: where ONNX exports go (the saved model's folder); None for references.
        score: (runner, same_backend) -> fields recorded beside a non-torch backend's timing: its dev `scores`
            (int8's accuracy) and, from scoring, its paired `test` against PyTorch fp32. `runner` is this model on
            the backend; `same_backend(predictor, folder)` puts another model (another seed's) on it, exported
            into its own folder.
    """
    total, non_emb = predictor.num_params()
    n_inter, n_off = sizes(kind, cfg, train)
    speed = []
    for backend, device, dtype in variants(kind, predictor, cfg):
        print(f"[measure] {name} {backend}/{device}/{dtype}: batch 1 x {min(n_inter, len(dev))}, "
              f"batch {cfg.offline_batch} x {min(n_off, len(train))}", flush=True)
        own_peak = memory.reset_peak()
        runner = on_device(backend_predictor(predictor, kind, backend, folder, dev.texts), device, dtype)
        entry = {"backend": backend, "device": device, "dtype": dtype,  # calibrated: PyTorch, the gate's speeds
                 **time_one(runner, device, dev, train, kind, cfg, calibrated=backend == "torch")}
        if backend != "torch" and score is not None:
            entry.update(score(runner, lambda p, f, b=backend, d=device, t=dtype:
                               on_device(backend_predictor(p, kind, b, f, dev.texts), d, t)))
        entry["peak_rss_gb"] = memory.peak(own_peak)["peak_rss_gb"]  # its export, timing and scoring, with the run's data
        speed.append(entry)
    predictor.to("cpu")
    return {"params_total": total, "params_non_embedding": non_emb, "threads": torch.get_num_threads(), "speed": speed}


def measure_one(model: str, backend: str, regime: str, device: str, n: int | None, data_dir: str | None) -> dict:
    """`harness measure`: one registered reference or trained model folder, one backend, regime and
    device, timed over the model's task sentences (dev for batch 1, train for the offline regime)."""
    from harness.core.errors import HarnessError
    from harness.core.registry import REFERENCES, TASKS
    from harness.data.tasks import load_task
    from harness.engine.predict import load_model

    if Path(model).is_dir():
        predictor, meta = load_model(Path(model))
        kind, task, folder = meta["kind"], TASKS.get(meta["task"]), Path(model)
    elif model in REFERENCES or not any(c in model for c in "/."):
        predictor, kind, task, folder = REFERENCES.get(model).build(2), "reference", TASKS.get("sst2"), None
    else:
        raise HarnessError(f"--model {model}: no such folder, and not a registered reference model")
    if backend not in [v[0] for v in variants(kind, predictor, MeasureConfig(devices=("cpu",)))]:
        raise HarnessError(f"--backend {backend} is not available for a {kind} model (ONNX: teachers and "
                           "students; int8: students)")
    if device == "cuda" and not torch.cuda.is_available():
        raise HarnessError("--device cuda: no CUDA device on this machine")
    splits = load_task(task.name, data_dir)
    cfg = MeasureConfig()
    n_inter, n_off = sizes(kind, cfg, splits["train"])
    texts = splits["validation"].texts[: n or n_inter] if regime == "interactive" else splits["train"].texts[: n or n_off]
    runner = on_device(backend_predictor(predictor, kind, backend, folder, splits["validation"].texts), device, "fp32")
    if regime == "interactive":
        stats = measure.interactive(runner.logits, texts, min(cfg.warmup, len(texts)), device, cfg.interactive_passes)
    else:
        stats = time_offline(runner, texts, kind, device, cfg)
    total, non_emb = predictor.num_params()
    return {"model": model, "backend": backend, "regime": regime, "device": device, "threads": torch.get_num_threads(),
            "params_total": total, "params_non_embedding": non_emb, **{k: stats[k] for k in
            ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "stdev_ms", "sentences_per_s", "calls", "items")},
            **({"whole_set_s": stats["whole_set_s"], "projected_from": stats["projected_from"]} if regime == "offline" else {})}
