"""The distillation objective: alpha * CE + (1 - alpha) * squared L2 distance of logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.engine.distill import distill_loss

STUDENT = torch.tensor([[1.0, -1.0, 0.5], [0.0, 2.0, -3.0]])
TEACHER = torch.tensor([[2.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
TARGETS = torch.tensor([0, 2])


def by_hand_mse() -> float:
    """Sum over classes of squared differences, averaged over the batch."""
    first = (2 - 1) ** 2 + (0 + 1) ** 2 + (0 - 0.5) ** 2  # 2.25
    second = (1 - 0) ** 2 + (1 - 2) ** 2 + (1 + 3) ** 2  # 18
    return (first + second) / 2


def test_alpha_zero_is_logit_mse() -> None:
    """alpha=0 is the squared L2 distance per example, batch mean."""
    assert distill_loss(STUDENT, TARGETS, TEACHER, 0.0).item() == pytest.approx(by_hand_mse())


def test_alpha_one_is_cross_entropy() -> None:
    """alpha=1 is plain cross-entropy on the hard targets."""
    ce = F.cross_entropy(STUDENT, TARGETS).item()
    assert distill_loss(STUDENT, TARGETS, TEACHER, 1.0).item() == pytest.approx(ce)


def test_alpha_half_mixes() -> None:
    """alpha=0.5 is the even mix of both terms."""
    ce = F.cross_entropy(STUDENT, TARGETS).item()
    assert distill_loss(STUDENT, TARGETS, TEACHER, 0.5).item() == pytest.approx(0.5 * ce + 0.5 * by_hand_mse())


def test_no_teacher_is_cross_entropy() -> None:
    """Label-only training ignores alpha."""
    ce = F.cross_entropy(STUDENT, TARGETS).item()
    assert distill_loss(STUDENT, TARGETS, None, 0.0).item() == pytest.approx(ce)


def test_gradient_reaches_student_only() -> None:
    """The loss is differentiable in the student logits: d/dz_S of the MSE is 2 (z_S - z_T) / B."""
    student = STUDENT.clone().requires_grad_(True)
    distill_loss(student, TARGETS, TEACHER, 0.0).backward()
    assert student.grad is not None
    torch.testing.assert_close(student.grad, 2 * (STUDENT - TEACHER) / len(STUDENT))


def test_lazy_adadelta_matches_dense_adadelta() -> None:
    """A sparse embedding trained with LazyAdadelta ends where a dense one trained with
    torch.optim.Adadelta does, over batches that leave most rows untouched for several steps."""
    from harness.engine.distill import LazyAdadelta

    torch.manual_seed(0)
    sparse, dense = torch.nn.Embedding(50, 4, padding_idx=0, sparse=True), torch.nn.Embedding(50, 4, padding_idx=0)
    dense.weight.data.copy_(sparse.weight.data)
    start = sparse.weight.detach().clone()
    opts = [LazyAdadelta(sparse.parameters(), lr=1.0, rho=0.95), torch.optim.Adadelta(dense.parameters(), lr=1.0, rho=0.95)]
    target = torch.randn(4)
    for _ in range(12):
        ids = torch.randint(0, 50, (3, 5))  # ~15 of 50 rows per step, row 0 (padding) among them
        for emb, opt in zip((sparse, dense), opts):
            opt.zero_grad()
            ((emb(ids) - target) ** 2).sum().backward()
            opt.step()
    assert (sparse.weight - start).abs().sum(dim=1).gt(0).sum() > 25  # most rows moved
    torch.testing.assert_close(sparse.weight, dense.weight, atol=1e-6, rtol=1e-5)
    assert torch.equal(sparse.weight[0], dense.weight[0])  # the padding row never moves
