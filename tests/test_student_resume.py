"""A student's training resumes from its saved state (harness/engine/distill.py, `state_dir`): a run killed
after an evaluation, resumed with a fresh model, ends with the weights and history of an uninterrupted run; with
`student.average` too, whose checks score and keep a moving average of the weights."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.core.config import StudentConfig
from harness.data.batching import TokenIds
from harness.engine import distill, train_state
from harness.engine.distill import train_student
from students.bilstm import BiLSTMClassifier

CFG = StudentConfig(batch_size=16, epochs=3, evals_per_epoch=2, patience=3)  # 8 batches an epoch, 6 evaluations


class Killed(Exception):
    """Stands for the process being killed."""


def model() -> BiLSTMClassifier:
    """A multichannel student: its trainable table has sparse gradients, so both optimizers are saved."""
    torch.manual_seed(1)
    return BiLSTMClassifier(vocab_size=20, embed_dim=6, hidden=5, fc=4, num_labels=2, multichannel=True)


def train(student: BiLSTMClassifier, state_dir: Path | None, kill_at: int | None = None, seed: int = 7,
          cfg: StudentConfig = CFG) -> dict:
    """Distil onto random logits; `kill_at` raises at that evaluation (1-based), after the earlier ones saved.
    The result's `evaluations` counts this call's, `scored` holds a copy of the weights each evaluation scored."""
    rng = np.random.default_rng(0)
    ids = TokenIds.from_lists([rng.integers(2, 20, size=rng.integers(2, 9)).tolist() for _ in range(120)])
    targets = rng.integers(0, 2, 120)
    logits = rng.normal(size=(120, 2)).astype(np.float32)
    evals = []

    def predict(select: list[TokenIds]) -> np.ndarray:
        evals.append({k: v.clone() for k, v in student.state_dict().items()})
        if len(evals) == kill_at:
            raise Killed
        return student(*select[0].pad(range(len(select[0])))).detach().numpy()

    result = train_student(student, cfg, [ids], targets, logits, [ids], targets.tolist(), ("accuracy",), predict, seed,
                           "resume", state_dir=state_dir)
    return {**result, "evaluations": len(evals), "scored": evals}


def scores(result: dict) -> list:
    return [(h["epoch"], h["select"]) for h in result["history"]]


@pytest.fixture(autouse=True)
def save_at_every_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(distill, "SAVE_EVERY_S", 0.0)


@pytest.mark.parametrize("cfg", [CFG, replace(CFG, average=0.9)], ids=["own weights", "averaged"])
def test_killed_run_resumes_to_the_same_weights_and_history(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                            cfg: StudentConfig) -> None:
    whole = model()
    expected = train(whole, None, cfg=cfg)
    state = tmp_path / "train_state"
    with pytest.raises(Killed):
        train(model(), state, kill_at=4, cfg=cfg)  # states saved at evaluations 1-3; killed in the second epoch
    path = train_state.find(state)
    assert path is not None
    assert len(train_state.read_progress(path)["history"]) == 3
    assert (path / "best.safetensors").is_file()
    saved_seconds = train_state.read_progress(path)["seconds"]
    resumed = model()
    result = train(resumed, state, cfg=cfg)
    assert "resuming from" in capsys.readouterr().out
    assert result["evaluations"] == expected["evaluations"] - 3  # it did not start again
    assert scores(result) == scores(expected)
    assert result["best_select"] == expected["best_select"]
    assert result["epochs_run"] == expected["epochs_run"]
    assert result["earlier_seconds"] == round(saved_seconds, 2) and expected["earlier_seconds"] == 0.0  # the killed run's time
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert not state.exists()  # cleared once training ends


def test_uninterrupted_training_is_unchanged_by_saving_states(tmp_path: Path) -> None:
    """Saving states draws nothing from the generators: the same run with and without a state folder."""
    plain, saving = model(), model()
    assert scores(train(plain, None)) == scores(train(saving, tmp_path / "train_state"))
    for a, b in zip(plain.state_dict().values(), saving.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_state_of_another_run_is_ignored(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    state = tmp_path / "train_state"
    with pytest.raises(Killed):
        train(model(), state, kill_at=2, seed=8)
    fresh = model()
    expected = train(model(), None)
    assert scores(train(fresh, state)) == scores(expected)
    assert "ignoring the training state" in capsys.readouterr().out


def test_averaged_checks_score_and_keep_the_average_and_train_on_their_own_weights() -> None:
    """`student.average`: each check scores the moving average (not the step's weights: the first check already
    differs from the plain run's), the weights kept are the best check's average, and training itself is untouched
    (the averaging block gives the model its own weights back, the same tensors the optimizers hold)."""
    plain, averaged = train(model(), None), train(kept := model(), None, cfg=replace(CFG, average=0.9))
    first_plain, first_avg = plain["scored"][0], averaged["scored"][0]
    assert any(not torch.equal(first_plain[k], first_avg[k]) for k in first_plain)
    best = next(i for i, h in enumerate(averaged["history"]) if h["select"]["accuracy"] == averaged["best_select"])
    for name, value in kept.state_dict().items():
        assert torch.equal(value, averaged["scored"][best][name]), name

    student = model()
    own = [p.detach().clone() for p in student.parameters()]
    params = list(student.parameters())
    avg = distill.AveragedModel(student, use_buffers=True)
    for p in avg.module.parameters():
        p.data.add_(1.0)
    with distill.averaged(student, avg):
        assert all(torch.equal(p, q + 1) for p, q in zip(student.parameters(), own, strict=True))
    assert all(torch.equal(p, q) for p, q in zip(student.parameters(), own, strict=True))
    assert all(p is q for p, q in zip(student.parameters(), params, strict=True))
