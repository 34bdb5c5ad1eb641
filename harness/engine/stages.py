"""Pipeline stages as functions of (config, inputs), each cached under a content key (the student stage is in
harness/engine/student_stage.py).

Each returns the path of its committed output folder and a `meta` dict with its wall time.
Bump a stage's VERSION when its code changes what it produces: keys hold no trace of the code
itself. SOURCES names the code each stage depends on, and tests/test_stage_versions.py pins its
sha256 beside each VERSION (tests/golden/stage_sources.json): it fails when a stage's code changed
but its VERSION did not. Then bump the VERSION if the stage's outputs change and pin the new code, or pin
it with the reason they do not: `.venv/bin/python tests/retake_golden.py stages [--reason "..."]`. Configs enter keys through
`cache_view`, so a field added later (config.added_field) changes no key while left at its default;
optional key parts are likewise left out when unused. Stages that create a model seed torch's
global generator first (torch seeds it randomly per process), so a stage's output depends on its
key alone, not on which stages ran before it in the process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.core import memory, progress
from harness.core.config import KEY_IF_CHANGED, AugmentConfig, RunConfig, TeacherConfig
from harness.core.errors import writing
from harness.core.registry import TEACHERS
from harness.data import augment
from harness.data.tasks import Split, Task
from harness.engine import device, label, label_backends, manifest, transfer
from harness.engine.cache import PARTIAL, Store, content_key, reserve, write_json_atomic

VERSIONS = {"teacher": 1, "augment": 1, "label": 1, "ensemble": 1, "import": 1, "student": 3}
# student 2: sparse embedding updates (LazyAdadelta); 3: unpacked LSTM directions (students/bilstm.py)

# The code each stage's output depends on: files, or `file::name` for one top-level function or class.
# tests/test_stage_versions.py pins their sha256 beside VERSIONS (tests/golden/stage_sources.json) and
# fails when they change while the stage's VERSION does not. Upstream stages need not be listed: their
# keys are part of this stage's key. Configs need not be either: they enter keys whole (cache_view).
_HERE = "harness/engine/stages.py::"
_STUDENT = "harness/engine/student_stage.py::"
SOURCES = {
    "teacher": [f"{_HERE}teacher_stage", f"{_HERE}checkpoint_key", f"{_HERE}sample", f"{_HERE}on_runtime", f"{_HERE}seal_model",
                "teachers/hf.py", "harness/engine/train_state.py", "harness/data/batching.py", "harness/core/metrics.py",
                "harness/engine/device.py"],
    "augment": [f"{_HERE}augment_stage", f"{_HERE}sample", "harness/data/augment.py", "harness/data/text.py"],
    "label": [f"{_HERE}label_stage", f"{_HERE}label_batch", f"{_HERE}load_teacher", f"{_HERE}on_runtime",
              "harness/engine/label.py", "harness/engine/label_backends.py", "harness/engine/ort.py", "teachers/hf.py",
              "teachers/hf_onnx.py", "harness/data/batching.py", "harness/engine/device.py"],
    "ensemble": [f"{_HERE}ensemble_stage"],
    "import": [f"{_HERE}import_stage", "harness/engine/transfer.py"],
    "student": [f"{_STUDENT}student_stage", f"{_STUDENT}training_rows", f"{_STUDENT}TransferData", f"{_HERE}seal_model",
                "harness/engine/distill.py", "harness/engine/wordmodel.py", "harness/engine/embeddings.py",
                "harness/data/text.py", "harness/data/batching.py", "harness/core/metrics.py", "harness/engine/device.py",
                "harness/engine/label.py", "harness/engine/train_state.py",
                "harness/engine/transfer.py::imported_vectors", f"{_STUDENT}student_key_view"],
    # the built-in students' files are added by tests/test_stage_versions.py (from pyproject.toml's entry points);
    # another package's student bumps its StudentSpec.version
}  # (student: `embedding: teacher` reads the teacher's weights through transformers, not teachers/hf.py's code)


def cache_view(cfg: Any) -> Any:
    """What of a config enters a cache key: its fields, minus `added_field`s left at their default."""
    if not dataclasses.is_dataclass(cfg):
        return cfg
    return {f.name: cache_view(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
            if not (f.metadata.get(KEY_IF_CHANGED) and getattr(cfg, f.name) == default_of(f))}


def default_of(f: dataclasses.Field) -> Any:
    """A dataclass field's default value (made by its factory, if it has one)."""
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def key_of(stage: str, optional: dict[str, Any] | None = None, **parts: Any) -> str:
    """The content key of `stage`: its version, `parts` (configs through cache_view) and the
    `optional` parts that are not None (left out when unused, keeping older keys valid)."""
    parts = {k: cache_view(v) for k, v in parts.items()}
    extra = {k: cache_view(v) for k, v in (optional or {}).items() if v is not None}
    return content_key(stage=stage, v=VERSIONS[stage], **parts, **extra)


def cached(store: Store, stage: str, key: str, build, shared: bool = False) -> tuple[Path, dict]:
    """Reuse `stage/key` when it is there and matches its manifest; else run build(work_dir) -> meta,
    then commit (its `seconds` add the `earlier_seconds` a build may return: the time of killed runs it resumed).
    A damaged entry is discarded with a one-line warning naming the file; a build that
    raises removes its work folder (a killed one keeps it, to resume). A full, read-only or vanished
    cache folder is a one-line `DiskFault` (harness/core/errors.py).

    Runs sharing the cache compute each entry once: all but an intact entry's reuse happens under the
    entry's lock (Store.lock), so a run that finds another computing it waits, then reuses its commit
    (or resumes its work folder, if that run was killed).

    In a dry run (`store.plan`, harness/pipeline.py's `plan`) it computes and writes nothing: it records and
    returns the entry's state (Store.state) as its meta.

    Under several processes rank 0 alone locks, checks, discards, prints and commits (the others wait
    for its decision at a collective). A `shared` build runs on every rank (each does its share; rank 0
    writes); any other runs on rank 0 while the rest wait.
    """
    if store.plan is not None:  # a dry run: what a run would do here (an entry met twice is computed once)
        seen = [s for s in store.plan if (s["stage"], s["key"]) == (stage, key)]
        store.plan.append({**seen[0], "state": "same as above"} if seen and seen[0]["state"] != "cached"
                          else store.state(stage, key))
        return store.path(stage, key), store.plan[-1]
    rt = device.current()
    path = store.path(stage, key)
    with writing(store.root, "--cache-dir"):
        intact = rt.main and store.has(stage, key) and store.problem(stage, key) is None  # committed: never changes
        with store.lock(stage, key) if rt.main and not intact else contextlib.nullcontext():
            reuse = intact or (rt.main and reusable(store, stage, key))
            if device.broadcast([float(reuse)])[0]:
                print(f"[{stage}] cached ({key})", flush=True)
                progress.stage(stage, key, cached=True)
                return path, {**json.loads((path / "meta.json").read_text()), "cached": True}
            print(f"[{stage}] computing ({key})", flush=True)
            progress.stage(stage, key, cached=False)
            work = store.partial(stage, key) if rt.main else store.root / stage / f"{key}{PARTIAL}"
            device.barrier()
            if shared or rt.main:
                start, own_peak = time.perf_counter(), memory.reset_peak()
                try:
                    with writing(work, "--cache-dir"):
                        meta = build(work)
                        if rt.main:
                            used = memory.peak(own_peak)
                            earlier = meta.pop("earlier_seconds", 0.0)  # training done by killed runs it resumed
                            meta = {**meta, "seconds": round(time.perf_counter() - start + earlier, 2), "key": key,
                                    "peak_rss_gb": used["peak_rss_gb"], "peak_rss_scope": used["scope"]}
                            write_json_atomic(work / "meta.json", meta)
                            store.commit(stage, key)
                except Exception:
                    if rt.main:
                        shutil.rmtree(work, ignore_errors=True)
                    raise
            device.barrier()
        return path, {**json.loads((path / "meta.json").read_text()), "cached": False}


def reusable(store: Store, stage: str, key: str) -> bool:
    """Whether `stage/key` is committed and intact; a damaged entry is discarded, with a warning."""
    if not store.has(stage, key):
        return False
    problem = store.problem(stage, key)
    if problem:
        print(f"warning: [{stage}] cache entry {store.path(stage, key)} is damaged: {problem}; discarded, recomputing",
              file=sys.stderr, flush=True)
        store.discard(stage, key)
    return problem is None


def sample(n: int, limit: int, seed: int) -> np.ndarray:
    """Sorted seeded sample of `limit` indices out of n (all when limit is 0)."""
    if limit <= 0 or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def teacher_stage(store: Store, task: Task, cfg: RunConfig, train: Split, select: Split) -> tuple[Path, dict]:
    """The fine-tuned teacher, its best checkpoint chosen on `select` (the selection split, or dev)."""
    # how it labels does not change the teacher: its key holds the labelling settings as they were when keys began
    fine_tuning = dataclasses.replace(cfg.teacher, label_backend="torch", label_batch_size=256,
                                      checkpoint=checkpoint_key(cfg.teacher.checkpoint))
    key = key_of("teacher", task=task.name, teacher=fine_tuning, seed=cfg.seed, train=train.fingerprint(),
                 dev=select.fingerprint())  # `dev`: the choosing split's key part, named before the selection split

    def build(work: Path) -> dict:
        idx = sample(len(train), cfg.teacher.train_limit, cfg.seed)
        subset = Split([train.texts[i] for i in idx], [train.labels[i] for i in idx], train.source)
        torch.manual_seed(cfg.seed)  # the classifier head's initial weights (the same on every rank)
        teacher = on_runtime(TEACHERS.get(cfg.teacher.name).create(cfg.teacher, task.num_labels), cfg)
        result = teacher.finetune(subset, select, cfg.teacher, cfg.seed, task.metrics, work / "model")
        if device.current().main:
            seal_model(work / "model", "teacher", cfg.teacher.name, task.name)
        return {**result, "train_examples": len(idx)}

    return cached(store, "teacher", key, build, shared=True)


def checkpoint_key(checkpoint: str) -> str:
    """What of `teacher.checkpoint` enters the teacher's key: a name (an alias, a hub id) as it is; a local
    folder by its contents, not its path (moved, it is the same teacher; changed in place, a new one)."""
    folder = Path(checkpoint).expanduser()
    return f"folder sha256 {manifest.folder_digest(folder)}" if checkpoint and folder.is_dir() else checkpoint


def augment_stage(store: Store, task: Task, cfg: RunConfig, train: Split, settings: AugmentConfig | None = None,
                  synthetic_only: bool = False) -> tuple[Path, dict]:
    """The transfer set: the originals (gold labels), then the unique synthetic rows (no gold label:
    -1, or NaN for a regression task's scores; see label.has_gold).

    Args:
        settings: augmentation settings other than the run's (an ablation variant's).
        synthetic_only: leave the originals out: a variant's own synthetic rows, trained on together
            with the originals of the run's transfer set, so the originals are labelled once.
    """
    settings = settings or cfg.augment
    key = key_of("augment", {"rows": "synthetic" if synthetic_only else None}, task=task.name, augment=settings,
                 seed=cfg.seed, train=train.fingerprint())

    def build(work: Path) -> dict:
        ids = sample(len(train), settings.source_limit, cfg.seed)
        rows = augment.generate(train.texts, train.labels, settings, cfg.seed, augment_ids=ids)
        if synthetic_only:
            rows = (row for row in rows if row[1] is None)
        n = augment.write_transfer_set(rows, len(task.text_columns), work / "transfer.arrow", task.is_regression)
        originals = 0 if synthetic_only else len(train)
        return {"rows": n, "originals": originals, "synthetic": n - originals, "augmented_sources": len(ids)}

    return cached(store, "augment", key, build)


def label_stage(store: Store, cfg: RunConfig, task: Task, teacher_dir: Path, augment_dir: Path) -> tuple[Path, dict]:
    """Teacher logits for the transfer set, by `teacher.label_backend` (harness/engine/label_backends.py): a
    backend other than PyTorch records its measured cost in accuracy in the stage's meta."""
    backend, batch = cfg.teacher.label_backend, label_batch(cfg.teacher)
    key = key_of("label", {"backend": backend if backend != "torch" else None}, teacher=teacher_dir.name,
                 augment=augment_dir.name, batch=batch)

    def build(work: Path) -> dict:
        teacher = load_teacher(teacher_dir, cfg)
        table = label.read_transfer_set(augment_dir / "transfer.arrow")
        start = time.perf_counter()
        labeller = label_backends.labeller(teacher, backend, work, table)
        export = time.perf_counter()
        label.label(labeller, table, batch, work, task.num_labels)
        times = {"label_seconds": round(time.perf_counter() - export, 2), "batch": batch}  # labelling alone (no export, no check)
        if backend == "torch" or not device.current().main:
            return {"rows": table.num_rows, **times}
        for onnx_file in work.glob("teacher*.onnx"):
            onnx_file.unlink()
        logits = np.load(work / "logits.npy", mmap_mode="r")
        check = label_backends.cost(teacher, table, logits, batch)
        print(f"[label] {backend} against the PyTorch teacher on {check['check_rows']} rows: {check}", flush=True)
        return {"rows": table.num_rows, "backend": backend, "backend_check": check, **times,
                "export_seconds": round(export - start, 2)}

    return cached(store, "label", key, build, shared=True)


def ensemble_stage(store: Store, label_dirs: list[Path]) -> tuple[Path, dict]:
    """An ensemble's logits for a transfer set: the mean of its members' (each member's are a label
    stage of their own, shared with a run of that teacher alone)."""
    key = key_of("ensemble", labels=[d.name for d in label_dirs])

    def build(work: Path) -> dict:
        members = [np.load(d / "logits.npy", mmap_mode="r") for d in label_dirs]
        out = np.lib.format.open_memmap(work / "logits.npy", mode="w+", dtype=np.float32, shape=members[0].shape)
        reserve(work / "logits.npy")
        for i in range(0, len(out), label.CHUNK):
            out[i : i + label.CHUNK] = np.mean([m[i : i + label.CHUNK] for m in members], axis=0)
        out.flush()
        return {"rows": len(out), "members": len(members)}

    return cached(store, "ensemble", key, build)


def import_stage(store: Store, task: Task, folder: Path) -> tuple[Path, dict]:
    """A transfer set exported by `harness export-transfer`, checked (task, label count, sha256) and
    unpacked into the stage cache as the transfer set and logits students read; no teacher runs."""
    meta = transfer.read_metadata(folder, task)
    key = key_of("import", rows=meta["files"][transfer.ROWS]["sha256"], vectors=meta["files"][transfer.VECTORS]["sha256"])

    def build(work: Path) -> dict:
        transfer.unpack(folder, meta, work)
        return {"rows": meta["rows"], "originals": meta["originals"], "synthetic": meta["synthetic"],
                "source": str(folder), "teacher": meta["teacher"], "exported_from": meta["source"],
                **({"derived": meta["derived"]} if "derived" in meta else {})}  # scripts/tree_transfer.py

    return cached(store, "import", key, build)


class TeacherEnsemble:
    """Fine-tuned teachers scored and timed as one model: the mean of their logits."""

    def __init__(self, members: list) -> None:
        self.members = members

    @property
    def mask_token(self) -> str:
        return self.members[0].mask_token

    def to(self, device: str | torch.device, autocast: torch.dtype | None = None) -> TeacherEnsemble:
        for m in self.members:
            m.to(device, autocast)
        return self

    def num_params(self) -> tuple[int, int]:
        sizes = [m.num_params() for m in self.members]
        return sum(s[0] for s in sizes), sum(s[1] for s in sizes)

    def logits(self, texts: list, batch_size: int, progress: bool = False) -> np.ndarray:
        return np.mean([m.logits(texts, batch_size, progress) for m in self.members], axis=0)


def label_batch(teacher: TeacherConfig) -> int:
    """Rows per labelling call: `teacher.label_batch_size`, or when 0 (auto) 32 on a CPU and 256 on a GPU."""
    if teacher.label_batch_size:
        return teacher.label_batch_size
    return 256 if device.current().device.type == "cuda" else 32


def seal_model(folder: Path, kind: str, plugin: str, task: str) -> None:
    """Finish a saved model folder: `harness.json` (what `predict` and `measure` load it as), then its
    manifest, last."""
    write_json_atomic(folder / "harness.json", {"kind": kind, "plugin": plugin, "task": task})
    manifest.write(folder)


def load_teacher(teacher_dir: Path, cfg: RunConfig):
    """The fine-tuned teacher, on the runtime's device, in the configured precision."""
    return on_runtime(TEACHERS.get(cfg.teacher.name).load(teacher_dir / "model", cfg.teacher.max_length), cfg)


def on_runtime(teacher, cfg: RunConfig):
    """A teacher on the runtime's device, under bfloat16 autocast when `teacher.precision` is bf16."""
    return teacher.to(device.current().device, torch.bfloat16 if cfg.teacher.precision == "bf16" else None)
