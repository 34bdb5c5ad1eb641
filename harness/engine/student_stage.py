"""The student stage: one student (or ablation variant) trained on a labelled transfer set, cached under a
content key like every stage (harness/engine/stages.py: its VERSION, SOURCES, `cached` and `key_of`), and the checks
that a student fits its task."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from harness.core.config import RunConfig
from harness.core.errors import HarnessError
from harness.core.metrics import predictions
from harness.core.registry import STUDENTS
from harness.core.variants import StudentJob
from harness.data.batching import TokenIds
from harness.data.tasks import Split, Task
from harness.engine import device, embeddings, label, stages, transfer
from harness.engine.cache import Store
from harness.engine.distill import train_student
from harness.engine.embeddings import initial_vectors
from harness.engine.wordmodel import StudentPredictor, Vocab


def check_student_fits(name: str, task: Task) -> None:
    """A student must read as many text columns as the task has (bilstm: 1, siamese_bilstm: 2).

    Raises:
        HarnessError: naming the student, the task and the students that fit.
    """
    spec = STUDENTS.get(name)
    columns = len(task.text_columns)
    if spec.columns != columns:
        fits = ", ".join(n for n in STUDENTS.names() if STUDENTS.get(n).columns == columns)
        raise HarnessError(f"student {name} reads {spec.columns} sentence(s) per example but task {task.name} has "
                           f"{columns}; students for it: {fits} (set them per task: per_task.{task.name}.students)")


def check_job_fits(job: StudentJob, task: Task) -> None:
    """A student job fits its task: the student reads the task's text columns, and a regression task
    (one output) gets no loss that needs classes (`kl`, `hard`: there is no softmax or argmax of one
    score).

    Raises:
        HarnessError: naming the job, the task and what to change.
    """
    check_student_fits(job.base, task)
    if task.is_regression and STUDENTS.get(job.base).distill and job.student.loss != "mse":
        raise HarnessError(f"{job.name}: student.loss={job.student.loss} needs classes, but task {task.name} is a "
                           f"regression task (one score); use loss mse there, e.g. per_task.{task.name}.ablations "
                           "without the kl/hard variants")


@dataclass(frozen=True)
class TransferData:
    """Where a student's training rows come from.

    Attributes:
        augment_dir: the run's transfer set (the originals first, then synthetic rows).
        label_dir: its teacher logits.
        synthetic: (augment_dir, label_dir) of a variant's own synthetic rows, which replace the run's
            (the originals still come from the run's transfer set); None for the run's own.
    """

    augment_dir: Path
    label_dir: Path
    synthetic: tuple[Path, Path] | None = None


def training_rows(data: TransferData, n_originals: int, transfer: bool) -> tuple[list[list[str]], np.ndarray, np.ndarray]:
    """Text columns, gold labels (-1 or NaN on synthetic rows) and teacher logits of the rows a student
    trains on: the whole transfer set, or only its first `n_originals` rows (the originals)."""
    parts = [(data.augment_dir, data.label_dir, n_originals if data.synthetic or not transfer else None)]
    if transfer and data.synthetic:
        parts.append((*data.synthetic, None))
    columns, gold, logits = None, [], []
    for augment_dir, label_dir, n in parts:
        table = label.read_transfer_set(augment_dir / "transfer.arrow")
        n = table.num_rows if n is None else n
        cols = [table.column(c).slice(0, n).to_pylist() for c in label.text_columns(table)]
        columns = cols if columns is None else [a + b for a, b in zip(columns, cols)]
        gold.append(table.column("label").to_numpy()[:n])
        logits.append(np.load(label_dir / "logits.npy", mmap_mode="r")[:n])
    return columns, np.concatenate(gold), np.ascontiguousarray(np.concatenate(logits))


def student_key_view(job: StudentJob) -> dict:
    """A student's settings as its cache key holds them: training and architecture side by side (as one
    StudentConfig held them before architectures had their own settings, so the keys stayed the same). A vectors
    file counts by its content (sha256), not its path."""
    view = {**stages.cache_view(job.student), **stages.cache_view(job.settings)}
    if embeddings.is_file(job.student.embedding):
        view["embedding"] = "file:" + embeddings.file_digest(job.student.embedding)
    return view


def student_stage(store: Store, job: StudentJob, task: Task, cfg: RunConfig, select: Split, n_train: int,
                  teacher_dir: Path | None, data: TransferData, dev: Split | None = None) -> tuple[Path, dict]:
    """Train one student (or ablation variant) on `data`, early stopping and its checkpoint chosen on
    `select` (the selection split, or dev); keyed by what it trains, so a variant equal to its base
    shares the base's output.

    Args:
        n_train: how many rows of the transfer set are originals (the first ones).
        teacher_dir: the teacher whose word vectors `embedding: teacher` reads (an ensemble's first
            member); None for an imported transfer set, which carries those vectors itself.
        dev: scored at every check under `student.watch_dev` (choosing nothing).
    """
    check_job_fits(job, task)
    spec = STUDENTS.get(job.base)
    scfg = job.student
    watched = dev if scfg.watch_dev and dev is not None and dev is not select else None
    optional = {"transfer": job.transfer if job.transfer != spec.transfer else None, "plugin_version": spec.version or None,
                "synthetic": [p.name for p in data.synthetic] if data.synthetic and job.transfer else None,
                "watched": watched.fingerprint() if watched else None}
    key = stages.key_of("student", optional, name=job.base, student=student_key_view(job), seed=cfg.seed,
                 teacher=(teacher_dir or data.augment_dir).name, augment=data.augment_dir.name, label=data.label_dir.name,
                 dev=select.fingerprint())

    def build(work: Path) -> dict:
        columns, gold, logits = training_rows(data, n_train, job.transfer)
        soft = logits if spec.distill else None
        # the hard target: gold where there is one, else the teacher's prediction (argmax, or its score)
        targets = np.where(label.has_gold(gold), gold, predictions(logits))
        targets = targets.astype(np.float32 if task.is_regression else np.int64)
        vocab = Vocab.from_texts(columns)
        if scfg.embedding == "teacher" and teacher_dir is None:
            vectors, emb_meta = transfer.imported_vectors(data.augment_dir, vocab.itos)
        else:
            teacher = stages.load_teacher(teacher_dir, cfg) if scfg.embedding == "teacher" else None
            vectors, emb_meta = initial_vectors(scfg.embedding, vocab.itos, scfg.embed_dim, cfg.seed, teacher)
        if scfg.project:
            vectors, emb_meta = embeddings.project(vectors, scfg.project, emb_meta)
        torch.manual_seed(cfg.seed)  # initial weights
        model = spec.build(job.settings, len(vocab), vectors.shape[1], task.num_labels)
        if hasattr(model, "init_embeddings"):  # optional (harness/core/protocols.py)
            model.init_embeddings(vectors)
        model.to(device.current().device)
        meta = {"student": job.base, "task": task.name, "num_labels": task.num_labels, "embed_dim": int(vectors.shape[1]),
                "max_tokens": scfg.max_tokens, "settings": asdict(job.settings),
                **asdict(job.settings)}  # (also flat, as code before issue 21 reads them: one cache serves both)
        predictor = StudentPredictor(model, vocab, meta)
        train_ids = [TokenIds.from_lists([vocab.encode(s.split(" "), scfg.max_tokens) for s in col]) for col in columns]
        result = train_student(model, scfg, train_ids, targets, soft, predictor.encode(select.texts), select.labels,
                               task.metrics, lambda ids: predictor.logits_from_ids(ids, 256), cfg.seed, job.name,
                               state_dir=work / "train_state",
                               watch=(predictor.encode(watched.texts), watched.labels) if watched else None)
        if device.current().main:
            predictor.to("cpu").save(work / "model")
            stages.seal_model(work / "model", "student", job.base, task.name)
        return {**result, "train_examples": len(gold), "vocab": len(vocab), "embedding": emb_meta,
                "config": {**asdict(scfg), **asdict(job.settings)}}

    return stages.cached(store, "student", key, build, shared=True)
