"""Student training: L = alpha * CE(z_S, t) + (1 - alpha) * D(z_S, z_T), Adadelta, early stopping.

D is the paper's squared distance of logits ||z_T - z_S||^2 (`mse`), or for the ablations the KL
divergence of temperature-softened probabilities scaled by T^2 (`kl`, Hinton et al.), or
cross-entropy on the teacher's argmax (`hard`: labels instead of logits). Without teacher logits
(the label-only baseline) the loss is plain cross-entropy on gold labels.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from harness.batching import TokenIds, bucketed_batches
from harness.config import StudentConfig
from harness.metrics import score


def distill_loss(student: torch.Tensor, targets: torch.Tensor, teacher: torch.Tensor | None, alpha: float,
                 loss: str = "mse", temperature: float = 1.0) -> torch.Tensor:
    """The paper's objective, and the ablations' variants of its distillation term.

    Args:
        student: student logits z_S, (B, K).
        targets: hard labels t, (B,): gold on originals, the teacher's argmax on synthetic examples.
        teacher: teacher logits z_T, (B, K), or None for label-only training.
        alpha: weight of the cross-entropy term.
        loss: the distillation term: mse, kl or hard.
        temperature: softmax temperature T of `kl`.
    """
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
    dev: list[TokenIds],
    dev_labels: list[int],
    metrics: tuple[str, ...],
    predict,
    seed: int,
    name: str,
) -> dict:
    """Train `model` in place, restore its best state on dev, and return the training history.

    Args:
        train: token ids per text column.
        targets: hard labels per training example.
        teacher_logits: (N, K) teacher logits, or None for label-only training.
        predict: (list[TokenIds]) -> logits, used to score dev.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adadelta(params, lr=cfg.lr, rho=cfg.rho)
    lengths = sum(t.lengths for t in train)
    stopper = EarlyStopping(cfg.patience)
    history, t0 = [], time.perf_counter()
    for epoch in range(cfg.epochs):
        batches = bucketed_batches(lengths, cfg.batch_size, rng)
        eval_at = {round(len(batches) * (k + 1) / cfg.evals_per_epoch) for k in range(cfg.evals_per_epoch)}
        model.train()
        bar = tqdm(batches, desc=f"{name} epoch {epoch + 1}/{cfg.epochs}", unit="batch", mininterval=2)
        for step, idx in enumerate(bar, start=1):
            inputs = [t for col in train for t in col.pad(idx)]
            hard = torch.from_numpy(targets[idx])
            soft = torch.from_numpy(teacher_logits[idx]) if teacher_logits is not None else None
            loss = distill_loss(model(*inputs), hard, soft, cfg.alpha, cfg.loss, cfg.temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            if step not in eval_at:
                continue
            model.eval()
            dev_scores = score(metrics, dev_labels, predict(dev).argmax(-1))
            model.train()
            at = round(epoch + step / len(batches), 3)
            history.append({"epoch": at, "dev": dev_scores, "seconds": round(time.perf_counter() - t0, 1)})
            tqdm.write(f"{name} dev {metrics[0]} {dev_scores[metrics[0]]:.2f} at epoch {at:.2f}")
            if stopper.update(dev_scores[metrics[0]], model):
                break
        if stopper.stop:
            break
    stopper.restore(model)
    model.eval()
    return {"history": history, "best_dev": stopper.best, "epochs_run": history[-1]["epoch"] if history else 0}


class EarlyStopping:
    """Keeps the best weights seen on dev; `stop` turns true after `patience` evaluations without gain."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best = -1.0
        self.state: dict | None = None
        self.bad = 0
        self.stop = False

    def update(self, value: float, model: torch.nn.Module) -> bool:
        if value > self.best:
            self.best, self.state, self.bad = value, copy.deepcopy(model.state_dict()), 0
        else:
            self.bad += 1
            self.stop = self.bad >= self.patience
        return self.stop

    def restore(self, model: torch.nn.Module) -> None:
        if self.state is not None:
            model.load_state_dict(self.state)
