"""Student training: L = alpha * CE(z_S, t) + (1 - alpha) * D(z_S, z_T), Adadelta, early stopping.

D is the paper's squared distance of logits ||z_T - z_S||^2 (`mse`), or for the ablations the KL
divergence of temperature-softened probabilities scaled by T^2 (`kl`, Hinton et al.), or
cross-entropy on the teacher's argmax (`hard`: labels instead of logits). Without teacher logits
(the label-only baseline) the loss is plain cross-entropy on gold labels.

A regression task (one output, e.g. STS-B's similarity score) swaps the cross-entropy for the squared
error to the target score: gold-only students regress gold scores, distilled ones the teacher's
score with the paper's MSE term, unchanged. `kl` and `hard` have no meaning there (config refuses them).

`student.precision=bf16` runs each training step's forward pass under bfloat16 autocast (the LSTM
and linear layers' products; the loss in fp32); weights, optimiser state, checkpoint choice and the saved
model stay fp32.
"""

from __future__ import annotations

import copy
import json
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from harness.core.config import StudentConfig
from harness.core.errors import HarnessError
from harness.core.metrics import improved, score_outputs, worst
from harness.core.progress import Bar
from harness.data.batching import TokenIds, bucketed_batches
from harness.engine import device, train_state

SAVE_EVERY_S = 60.0  # a training state at the first evaluation this long after the last one (train_student)


def distill_loss(student: torch.Tensor, targets: torch.Tensor, teacher: torch.Tensor | None, alpha: float,
                 loss: str = "mse", temperature: float = 1.0) -> torch.Tensor:
    """The paper's objective, and the ablations' variants of its distillation term.

    Args:
        student: student logits z_S, (B, K).
        targets: hard labels t, (B,): gold on originals, the teacher's argmax on synthetic examples;
            for a regression task (K = 1) the gold score, or the teacher's on synthetic examples.
        teacher: teacher logits z_T, (B, K), or None for label-only training.
        alpha: weight of the cross-entropy term.
        loss: the distillation term: mse, kl or hard.
        temperature: softmax temperature T of `kl`.
    """
    if student.shape[-1] == 1:  # regression: squared error to the target score, (B, 1) vs (B,)
        ce = ((student[:, 0] - targets.to(student.dtype)) ** 2).mean()
    else:
        ce = F.cross_entropy(student, targets)
    if teacher is None:
        return ce
    if loss == "mse":
        term = ((teacher - student) ** 2).sum(dim=-1).mean()  # squared L2 distance per example, batch mean
    elif loss == "kl":
        t = temperature
        log_p_student = F.log_softmax(student / t, dim=-1)  # (B, K)
        log_p_teacher = F.log_softmax(teacher / t, dim=-1)  # (B, K)
        term = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * t * t
    elif loss == "hard":
        term = F.cross_entropy(student, teacher.argmax(dim=-1))
    else:
        raise ValueError(f"unknown distillation loss {loss!r}")
    return alpha * ce + (1 - alpha) * term


def train_student(
    model: torch.nn.Module,
    cfg: StudentConfig,
    train: list[TokenIds],
    targets: np.ndarray,
    teacher_logits: np.ndarray | None,
    select: list[TokenIds],
    select_labels: list[float],
    metrics: tuple[str, ...],
    predict,
    seed: int,
    name: str,
    state_dir: Path | None = None,
    watch: tuple[list[TokenIds], list[float]] | None = None,
) -> dict:
    """Train `model` in place, restore its best state on `select`, and return the training history (and
    `earlier_seconds`: the training time of the killed runs this one resumed, up to their last saved state).

    Args:
        train: token ids per text column.
        targets: hard labels (or regression scores) per training example.
        teacher_logits: (N, K) teacher logits, or None for label-only training.
        select: token ids of the split early stopping and the checkpoint are chosen on (the selection
            split, or dev under `selection.on=dev`), with `select_labels`.
        predict: (list[TokenIds]) -> outputs, used to score `select`.
        metrics: the task's metrics; the first one selects the checkpoint, in its direction.
        state_dir: where a training state is kept (harness/engine/train_state.py), at the evaluations at least
            SAVE_EVERY_S apart: weights, optimizers, generators, the best weights so far and the history. A run
            killed at any point resumes from it and ends with the same weights and history as an uninterrupted
            one (a paper-size SST-2 student trains for hours on a CPU). Deleted when training ends.
        watch: token ids and labels of a split scored at every check beside `select` (`student.watch_dev`: dev),
            into the history's `dev`; it chooses nothing.
    """
    rt = device.current()
    torch.manual_seed(seed)  # every rank alike: dropout draws one process's masks (device.shared_dropout)
    rng = np.random.default_rng(seed)  # the batches: the same on every rank
    opts = optimizers(model, cfg)
    lengths = sum(t.lengths for t in train)
    stopper = EarlyStopping(cfg.patience, metrics[0])
    avg = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.average), use_buffers=True) if cfg.average else None
    run = json.loads(json.dumps({"seed": seed, "examples": len(lengths), "tokens": int(np.sum(lengths)),
                                 "config": asdict(cfg)}))  # as read back from state.json (tuples as lists)
    done = resume(state_dir, run, model, opts, stopper, name, avg) if state_dir else None
    history = done["history"] if done else []
    t0, saved_at = time.perf_counter() - (done["seconds"] if done else 0.0), time.perf_counter()
    for epoch in range(cfg.epochs):
        epoch_rng = rng.bit_generator.state
        batches = bucketed_batches(lengths, cfg.batch_size, rng)
        if done and epoch < done["epoch"]:
            continue  # finished before the interruption: drawing its batches replays the rng
        skip = done["step"] if done and epoch == done["epoch"] else 0
        if skip and epoch_rng != done["numpy_rng"]:
            raise HarnessError(f"{state_dir} does not replay to the same batches (code changed?): delete it")
        eval_at = {round(len(batches) * (k + 1) / cfg.evals_per_epoch) for k in range(cfg.evals_per_epoch)}
        model.train()
        bar = Bar(batches[skip:], desc=f"{name} epoch {epoch + 1}/{cfg.epochs}", unit="batch", mininterval=2,
                  initial=skip, total=len(batches))
        for step, idx in enumerate(bar, start=skip + 1):
            mine = device.shard(idx)  # this rank's share of the batch (all of it in one process)
            for opt in opts:
                opt.zero_grad()
            if len(mine):
                inputs = device.to_device([t for col in train for t in col.pad(mine)])
                hard = device.to_device(torch.from_numpy(targets[mine]))
                soft = device.to_device(torch.from_numpy(teacher_logits[mine])) if teacher_logits is not None else None
                bf16 = torch.autocast(rt.device.type, torch.bfloat16, enabled=cfg.precision == "bf16")
                with bf16, device.shared_dropout(len(idx)):
                    outputs = model(*inputs)
                loss = distill_loss(outputs.float(), hard, soft, cfg.alpha, cfg.loss, cfg.temperature)
                (loss * (len(mine) / len(idx))).backward()  # ranks' shares sum to the batch mean
            device.sync_generator(len(idx))  # a rank without rows drew no masks
            device.sum_gradients(p for p in model.parameters() if p.requires_grad)
            for opt in opts:
                opt.step()
            if avg is not None:
                avg.update_parameters(model)
            if len(mine):
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            if step not in eval_at:
                continue
            model.eval()
            with averaged(model, avg):  # the weights scored and kept: the step's own, or their average
                scored = score_outputs(metrics, select_labels, predict(select))
                scores = dict(zip(metrics, device.broadcast(list(scored.values()))))
                watched = score_outputs(metrics, watch[1], predict(watch[0])) if watch else None
                stop = stopper.update(scores[metrics[0]], model)
            model.train()
            at = round(epoch + step / len(batches), 3)
            history.append({"epoch": at, "select": scores, "seconds": round(time.perf_counter() - t0, 1),
                            **({"dev": watched} if watched else {})})
            Bar.write(f"{name} [select] {metrics[0]} {scores[metrics[0]]:.2f} at epoch {at:.2f}"
                      + (f" (dev {watched[metrics[0]]:.2f}, watched: chooses nothing)" if watched else ""))
            if stop:
                break
            if state_dir and time.perf_counter() - saved_at >= SAVE_EVERY_S:
                progress = {"epoch": epoch, "step": step, "history": history, "seconds": time.perf_counter() - t0,
                            "numpy_rng": epoch_rng, "best": stopper.best, "bad": stopper.bad, "run": run}
                if rt.main:
                    train_state.save(state_dir, model, opts, None, progress,
                                     extra={"best": stopper.state, **({"average": avg.state_dict()} if avg else {})})
                saved_at = time.perf_counter()
        if stopper.stop:
            break
    stopper.restore(model)
    model.eval()
    if state_dir and rt.main:
        train_state.clear(state_dir)
    return {"history": history, "best_select": stopper.best, "epochs_run": history[-1]["epoch"] if history else 0,
            "earlier_seconds": round(done["seconds"], 2) if done else 0.0}


def resume(state_dir: Path, run: dict, model: torch.nn.Module, opts: list[torch.optim.Optimizer],
           stopper: EarlyStopping, name: str, avg: AveragedModel | None = None) -> dict | None:
    """Restore the state an interrupted `train_student` of the same `run` saved in `state_dir` into the model,
    its optimizers, torch's generator, `stopper` and the weights' average `avg`, and return its progress (None,
    and any state of another run deleted, when there is none to resume)."""
    found = train_state.resumable(state_dir, run, "student")
    if found is None:
        return None
    path, done = found
    train_state.restore(path, model, opts, None)
    stopper.best, stopper.bad, stopper.state = done["best"], done["bad"], train_state.extra(path, "best")
    if avg is not None:
        avg.load_state_dict(train_state.extra(path, "average"))
    print(f"[student] {name}: resuming from {path}: epoch {done['epoch'] + 1}/{run['config']['epochs']}, after step "
          f"{done['step']} (best so far {done['best']:.2f})", flush=True)
    return done


@contextmanager
def averaged(model: torch.nn.Module, avg: AveragedModel | None):
    """Inside the block `model` holds the average's weights (`student.average`); its own are back after it."""
    if avg is None:
        yield
        return
    own = copy.deepcopy(model.state_dict())
    model.load_state_dict(avg.module.state_dict())
    try:
        yield
    finally:
        model.load_state_dict(own)


def optimizers(model: torch.nn.Module, cfg: StudentConfig) -> list[torch.optim.Optimizer]:
    """Adadelta for the dense parameters, as one multi-tensor (`foreach`) step: the same arithmetic as
    a loop over parameters, in a tenth of the operator calls; and LazyAdadelta for embedding tables
    with sparse gradients."""
    sparse = [m.weight for m in model.modules() if isinstance(m, torch.nn.Embedding) and m.sparse and m.weight.requires_grad]
    dense = [p for p in model.parameters() if p.requires_grad and all(p is not q for q in sparse)]
    opts = [torch.optim.Adadelta(dense, lr=cfg.lr, rho=cfg.rho, foreach=True)]
    if sparse:
        opts.append(LazyAdadelta(sparse, lr=cfg.lr, rho=cfg.rho))
    return opts


class LazyAdadelta(torch.optim.Optimizer):
    """torch.optim.Adadelta's update for parameters with sparse gradients (embedding tables), applied
    to the rows in the batch only.

    Dense Adadelta decays both running averages of every row each step, and a row whose gradient is
    zero does not move. So a row last updated k steps ago gets its averages multiplied by rho**k, then
    the usual update: the dense result (up to float rounding) at the cost of the batch's rows. With
    QQP's 39,300-word vocabulary the dense update of the trainable embedding copy took 35% of each
    Siamese training step.
    """

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6) -> None:
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, rho, eps = group["lr"], group["rho"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=0, square_avg=torch.zeros_like(p), acc_delta=torch.zeros_like(p),
                                 last=torch.zeros(p.shape[0], dtype=torch.long, device=p.device))
                state["step"] += 1
                grad = p.grad.coalesce() if p.grad.is_sparse else p.grad.to_sparse(1)  # rows: indices[0]
                rows, g = grad.indices()[0], grad.values()  # (R,), (R, D)
                decay = rho ** (state["step"] - 1 - state["last"][rows]).to(p.dtype).unsqueeze(1)  # steps skipped
                # each row's state read once and written once; in-place arithmetic in the order of the
                # plain expressions (sa * decay * rho + (1 - rho) * g * g, ...), so the results are bit-equal
                square_avg = state["square_avg"][rows].mul_(decay).mul_(rho).add_(g.mul(1 - rho).mul_(g))
                acc_delta = state["acc_delta"][rows].mul_(decay)
                delta = acc_delta.add(eps).sqrt_().div_(square_avg.add(eps).sqrt_()).mul_(g)
                state["acc_delta"][rows] = acc_delta.mul_(rho).add_(delta.mul(1 - rho).mul_(delta))
                state["square_avg"][rows] = square_avg
                state["last"][rows] = state["step"]
                p.index_add_(0, rows, delta, alpha=-lr)  # rows are unique (coalesced)


class EarlyStopping:
    """Keeps the best weights seen on the selection split; `stop` turns true after `patience`
    evaluations without gain.

    Args:
        patience: evaluations without gain before stopping.
        metric: the selection metric's name; best-so-far starts at its worst value (minus infinity
            for higher-is-better) and the first evaluation's weights are always kept, so an undefined
            (NaN) score still leaves weights to restore.
    """

    def __init__(self, patience: int, metric: str = "accuracy") -> None:
        self.patience = patience
        self.metric = metric
        self.best = worst(metric)
        self.state: dict | None = None
        self.bad = 0
        self.stop = False

    def update(self, value: float, model: torch.nn.Module) -> bool:
        if self.state is None or improved(self.metric, value, self.best):
            self.best, self.state, self.bad = value, copy.deepcopy(model.state_dict()), 0
        else:
            self.bad += 1
            self.stop = self.bad >= self.patience
        return self.stop

    def restore(self, model: torch.nn.Module) -> None:
        if self.state is not None:
            model.load_state_dict(self.state)
