"""Student training: L = alpha * CE(z_S, t) + (1 - alpha) * ||z_T - z_S||^2, Adadelta, early stopping.

Without teacher logits (the label-only baseline) the loss is plain cross-entropy on gold labels.
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


def distill_loss(student: torch.Tensor, targets: torch.Tensor, teacher: torch.Tensor | None, alpha: float) -> torch.Tensor:
    """The paper's objective.

    Args:
        student: student logits z_S, (B, K).
        targets: hard labels t, (B,): gold on originals, the teacher's argmax on synthetic examples.
        teacher: teacher logits z_T, (B, K), or None for label-only training.
        alpha: weight of the cross-entropy term.
    """
    ce = F.cross_entropy(student, targets)
    if teacher is None:
        return ce
    mse = ((teacher - student) ** 2).sum(dim=-1).mean()  # squared L2 distance per example, batch mean
    return alpha * ce + (1 - alpha) * mse


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
    best, best_state, bad, history, t0 = -1.0, None, 0, [], time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        batches = bucketed_batches(lengths, cfg.batch_size, rng)
        bar = tqdm(batches, desc=f"{name} epoch {epoch + 1}/{cfg.epochs}", unit="batch", mininterval=2)
        for idx in bar:
            inputs = [t for col in train for t in col.pad(idx)]
            hard = torch.from_numpy(targets[idx])
            soft = torch.from_numpy(teacher_logits[idx]) if teacher_logits is not None else None
            loss = distill_loss(model(*inputs), hard, soft, cfg.alpha)
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        model.eval()
        dev_scores = score(metrics, dev_labels, predict(dev).argmax(-1))
        history.append({"epoch": epoch + 1, "dev": dev_scores, "seconds": time.perf_counter() - t0})
        main = dev_scores[metrics[0]]
        tqdm.write(f"{name} dev {metrics[0]} {main:.2f} after epoch {epoch + 1}")
        if main > best:
            best, best_state, bad = main, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {"history": history, "best_dev": best, "epochs_run": len(history)}
