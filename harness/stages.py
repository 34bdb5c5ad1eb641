"""Pipeline stages as functions of (config, inputs), each cached under a content key.

Each returns the path of its committed output folder and a `meta` dict with its wall time.
Bump a stage's VERSION when its code changes what it produces.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from harness import augment, label
from harness.batching import TokenIds
from harness.cache import Store, content_key, write_json_atomic
from harness.config import RunConfig
from harness.distill import train_student
from harness.embeddings import initial_vectors
from harness.registry import STUDENTS, TEACHERS
from harness.tasks import Split, Task
from harness.wordmodel import StudentPredictor, Vocab

VERSIONS = {"teacher": 1, "augment": 1, "label": 1, "student": 1}


def cached(store: Store, stage: str, key: str, build) -> tuple[Path, dict]:
    """Reuse `stage/key` when it is there; else run build(work_dir) -> meta, then commit."""
    if store.has(stage, key):
        meta = json.loads((store.path(stage, key) / "meta.json").read_text())
        print(f"[{stage}] cached ({key})", flush=True)
        return store.path(stage, key), {**meta, "cached": True}
    print(f"[{stage}] computing ({key})", flush=True)
    work = store.partial(stage, key)
    start = time.perf_counter()
    meta = build(work)
    meta = {**meta, "seconds": round(time.perf_counter() - start, 2), "key": key}
    write_json_atomic(work / "meta.json", meta)
    return store.commit(stage, key), {**meta, "cached": False}


def sample(n: int, limit: int, seed: int) -> np.ndarray:
    """Sorted seeded sample of `limit` indices out of n (all when limit is 0)."""
    if limit <= 0 or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def teacher_stage(store: Store, task: Task, cfg: RunConfig, train: Split, dev: Split) -> tuple[Path, dict]:
    key = content_key(stage="teacher", v=VERSIONS["teacher"], task=task.name, teacher=cfg.teacher,
                      seed=cfg.seed, train=train.fingerprint(), dev=dev.fingerprint())

    def build(work: Path) -> dict:
        idx = sample(len(train), cfg.teacher.train_limit, cfg.seed)
        subset = Split([train.texts[i] for i in idx], [train.labels[i] for i in idx], train.source)
        teacher = TEACHERS.get(cfg.teacher.name).create(cfg.teacher, task.num_labels)
        result = teacher.finetune(subset, dev, cfg.teacher, cfg.seed, task.metrics, work / "model")
        write_json_atomic(work / "model" / "harness.json", {"kind": "teacher", "plugin": cfg.teacher.name, "task": task.name})
        return {**result, "train_examples": len(idx)}

    return cached(store, "teacher", key, build)


def augment_stage(store: Store, task: Task, cfg: RunConfig, train: Split) -> tuple[Path, dict]:
    key = content_key(stage="augment", v=VERSIONS["augment"], task=task.name, augment=cfg.augment,
                      seed=cfg.seed, train=train.fingerprint())

    def build(work: Path) -> dict:
        ids = sample(len(train), cfg.augment.source_limit, cfg.seed)
        rows = augment.generate(train.texts, train.labels, cfg.augment, cfg.seed, augment_ids=ids)
        n = augment.write_transfer_set(rows, len(task.text_columns), work / "transfer.arrow")
        return {"rows": n, "originals": len(train), "synthetic": n - len(train), "augmented_sources": len(ids)}

    return cached(store, "augment", key, build)


def label_stage(store: Store, cfg: RunConfig, task: Task, teacher_dir: Path, augment_dir: Path) -> tuple[Path, dict]:
    key = content_key(stage="label", v=VERSIONS["label"], teacher=teacher_dir.name, augment=augment_dir.name,
                      batch=cfg.teacher.label_batch_size)

    def build(work: Path) -> dict:
        teacher = load_teacher(teacher_dir, cfg)
        table = label.read_transfer_set(augment_dir / "transfer.arrow")
        label.label(teacher, table, cfg.teacher.label_batch_size, work, task.num_labels)
        return {"rows": table.num_rows}

    return cached(store, "label", key, build)


def load_teacher(teacher_dir: Path, cfg: RunConfig):
    return TEACHERS.get(cfg.teacher.name).load(teacher_dir / "model", cfg.teacher.max_length)


def student_stage(store: Store, name: str, task: Task, cfg: RunConfig, dev: Split, n_train: int,
                  teacher_dir: Path, augment_dir: Path, label_dir: Path) -> tuple[Path, dict]:
    spec = STUDENTS.get(name)
    scfg = replace(cfg.student, **spec.overrides)
    key = content_key(stage="student", v=VERSIONS["student"], name=name, student=scfg, seed=cfg.seed,
                      teacher=teacher_dir.name, augment=augment_dir.name, label=label_dir.name, dev=dev.fingerprint())

    def build(work: Path) -> dict:
        table = label.read_transfer_set(augment_dir / "transfer.arrow")
        logits = np.load(label_dir / "logits.npy", mmap_mode="r")
        n = table.num_rows if spec.transfer else n_train
        gold = table.column("label").to_numpy()[:n]
        soft = np.ascontiguousarray(logits[:n]) if spec.distill else None
        targets = np.where(gold >= 0, gold, np.asarray(logits[:n]).argmax(-1)).astype(np.int64)
        columns = [table.column(name).slice(0, n).to_pylist() for name in label.text_columns(table)]
        vocab = Vocab.from_texts(columns)
        teacher = load_teacher(teacher_dir, cfg) if scfg.embedding == "teacher" else None
        vectors, emb_meta = initial_vectors(scfg.embedding, vocab.itos, scfg.embed_dim, cfg.seed, teacher)
        model = spec.build(scfg, len(vocab), vectors.shape[1], task.num_labels)
        model.encoder.init_embeddings(vectors)
        meta = {"student": name, "task": task.name, "num_labels": task.num_labels, "embed_dim": int(vectors.shape[1]),
                "max_tokens": scfg.max_tokens, **{k: getattr(scfg, k) for k in ("hidden", "fc", "multichannel", "dropout")}}
        predictor = StudentPredictor(model, vocab, meta)
        train_ids = [TokenIds.from_lists([vocab.encode(s.split(" "), scfg.max_tokens) for s in col]) for col in columns]
        result = train_student(model, scfg, train_ids, targets, soft, predictor.encode(dev.texts), dev.labels,
                               task.metrics, lambda ids: predictor.logits_from_ids(ids, 256), cfg.seed, name)
        predictor.save(work / "model")
        write_json_atomic(work / "model" / "harness.json", {"kind": "student", "plugin": name, "task": task.name})
        return {**result, "train_examples": n, "vocab": len(vocab), "embedding": emb_meta, "config": asdict(scfg)}

    return cached(store, "student", key, build)
