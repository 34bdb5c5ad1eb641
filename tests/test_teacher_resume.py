"""Teacher fine-tuning survives interruption: killed at any step and resumed, it ends with the very
weights and dev history of an uninterrupted run; its training state holds no pickle."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch.optim.optimizer import register_optimizer_step_post_hook

import teachers.hf
from harness.core.config import RunConfig, TeacherConfig
from harness.core.registry import TASKS, TEACHERS
from harness.data.tasks import Split, load_task
from harness.engine import train_state
from harness.engine.cache import Store
from harness.engine.stages import teacher_stage
from teachers.hf import HFTeacher

N_TRAIN, N_DEV = 200, 100
# 200 examples in batches of 16: 13 steps an epoch, 26 in all; dev evaluations after steps 6 and 13.
CFG = TeacherConfig(name="hf_tiny", epochs=2, evals_per_epoch=2, batch_size=16, lr=5e-3, max_length=32)
TOTAL_STEPS = 26
CHECKPOINT_EVERY = 5  # so states are saved after global steps 5, 6 (eval), 11, 13 (eval), 18, 19 (eval), 24, 26
METRICS = ("accuracy",)
SEED = 3

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


class Interrupted(KeyboardInterrupt):
    """The simulated Ctrl-C / kill, raised from inside the training loop."""



@pytest.fixture(autouse=True)
def small_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(teachers.hf, "CHECKPOINT_EVERY_STEPS", CHECKPOINT_EVERY)


@pytest.fixture(scope="module")
def splits(data_root: Path) -> tuple[Split, Split]:
    """200 real SST-2 training sentences, and the first 100 of them as the "dev" set: a tiny model's
    score on real dev sentences stays flat in 26 steps, on these it rises, so the best checkpoint
    is a later one (49, 49, 51, 51% accuracy: saved at the third evaluation)."""
    train = load_task("sst2", data_root)["train"]
    return (Split(train.texts[:N_TRAIN], train.labels[:N_TRAIN], train.source),
            Split(train.texts[:N_DEV], train.labels[:N_DEV], train.source))


class StepCounter:
    """Counts optimizer steps (a global post-step hook) and raises Interrupted after the `stop_after`th."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.steps, self.stop_after = 0, stop_after

    def __call__(self, opt: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        self.steps += 1
        if self.steps == self.stop_after:
            raise Interrupted


def finetune(work: Path, splits: tuple[Split, Split], stop_after: int | None = None) -> tuple[HFTeacher, dict, int]:
    """A fresh hf_tiny teacher fine-tuned into `work/model` as the teacher stage does (seeded, then
    created); raises Interrupted after `stop_after` optimizer steps. Returns the teacher, the
    result and the optimizer steps this call took."""
    counter = StepCounter(stop_after)
    handle = register_optimizer_step_post_hook(counter)
    try:
        torch.manual_seed(SEED)
        teacher = TEACHERS.get("hf_tiny").create(CFG, 2)
        result = teacher.finetune(*splits, CFG, SEED, METRICS, work / "model")
    finally:
        handle.remove()
    return teacher, result, counter.steps


def without_seconds(history: list[dict]) -> list[dict]:
    """The history less its wall times, which no two runs share."""
    return [{k: v for k, v in entry.items() if k != "seconds"} for entry in history]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, splits: tuple[Split, Split]) -> tuple[Path, HFTeacher, dict]:
    """Run A: fine-tuning that nothing interrupts."""
    work = tmp_path_factory.mktemp("uninterrupted")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(teachers.hf, "CHECKPOINT_EVERY_STEPS", CHECKPOINT_EVERY)
        teacher, result, steps = finetune(work, splits)
    assert steps == TOTAL_STEPS
    return work, teacher, result


def assert_same_run(a: tuple[Path, HFTeacher, dict], b: tuple[Path, HFTeacher, dict]) -> None:
    """Bit-identical best checkpoints, final in-memory weights and dev histories."""
    (work_a, teacher_a, result_a), (work_b, teacher_b, result_b) = a, b
    assert result_b["best_select"] == result_a["best_select"]
    assert without_seconds(result_b["history"]) == without_seconds(result_a["history"])
    assert len(result_a["history"]) == CFG.epochs * CFG.evals_per_epoch
    best_a, best_b = (load_file(w / "model" / "model.safetensors") for w in (work_a, work_b))
    assert best_a.keys() == best_b.keys()
    assert all(torch.equal(best_a[k], best_b[k]) for k in best_a)
    final_a, final_b = teacher_a.model.state_dict(), teacher_b.model.state_dict()
    assert final_a.keys() == final_b.keys()
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)


def saved_at(work: Path) -> tuple[int, int] | None:
    """(epoch, steps done in it) of the training state in `work`; None when there is none."""
    path = train_state.find(work / "train_state")
    progress = train_state.read_progress(path) if path else None
    return (progress["epoch"], progress["step"]) if progress else None


@pytest.mark.parametrize("attempts", [
    [(9, (0, 6))],  # killed mid-epoch 1, after the state saved at its first dev evaluation
    [(3, None), (14, (0, 13)), (7, (1, 6))],  # before any state; just after epoch 1; mid-epoch 2
], ids=["once", "thrice"])
def test_interrupted_then_resumed_equals_uninterrupted(
    tmp_path: Path, splits: tuple[Split, Split], uninterrupted: tuple[Path, HFTeacher, dict],
    attempts: list[tuple[int, tuple[int, int] | None]], capsys: pytest.CaptureFixture[str],
) -> None:
    """Each attempt, a fresh teacher object is killed after `stop_after` optimizer steps (inside
    AdamW.step, before the scheduler's step), leaving the expected state; the last attempt resumes
    from it, redoes only the steps after it, and ends bit-identical to run A."""
    for stop_after, expected in attempts:
        with pytest.raises(Interrupted):
            finetune(tmp_path, splits, stop_after)
        assert saved_at(tmp_path) == expected
    teacher, result, steps = finetune(tmp_path, splits)
    epoch, step = attempts[-1][1]
    assert steps == TOTAL_STEPS - (epoch * TOTAL_STEPS // CFG.epochs + step)
    assert f"resuming from {tmp_path / 'train_state'}: epoch {epoch + 1}/2, after step {step}/13" in capsys.readouterr().out
    assert_same_run(uninterrupted, (tmp_path, teacher, result))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # the state is gone


def test_uninterrupted_run_leaves_no_state(uninterrupted: tuple[Path, HFTeacher, dict]) -> None:
    work, _, result = uninterrupted
    assert sorted(p.name for p in work.iterdir()) == ["model"]
    assert [e["epoch"] for e in result["history"]] == [0.462, 1.0, 1.462, 2.0]


def test_state_holds_no_pickle(tmp_path: Path, splits: tuple[Split, Split]) -> None:
    """Every file of the saved state is JSON or safetensors, and the code never pickles."""
    with pytest.raises(Interrupted):
        finetune(tmp_path, splits, stop_after=8)
    state = tmp_path / "train_state"
    files = sorted(p.name for p in state.iterdir())
    assert files == sorted(train_state.FILES)
    for path in state.iterdir():
        if path.suffix == ".json":
            progress = json.loads(path.read_text())["progress"]
            assert (progress["epoch"], progress["step"]) == (0, 6)
        else:
            assert path.suffix == ".safetensors"
            with safe_open(path, framework="pt") as f:
                assert list(f.keys())
    assert all(not p.read_bytes().startswith(b"\x80") for p in state.iterdir())  # pickle's protocol marker
    for module in (teachers.hf, train_state):
        assert not pickling_calls(Path(module.__file__).read_text()), module.__name__


def pickling_calls(source: str) -> list[str]:
    """Imports of pickle and calls of torch's pickle-based save/load in `source` (found by parsing)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            found += [n for n in names if n and n.split(".")[0] == "pickle"]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("save", "load"):
            if isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                found.append(f"torch.{node.func.attr}")
    return found


def test_state_of_another_run_is_ignored(tmp_path: Path, splits: tuple[Split, Split],
                                         uninterrupted: tuple[Path, HFTeacher, dict],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A state saved for other training data is not resumed from: the run starts over."""
    train, dev = splits
    with pytest.raises(Interrupted):
        finetune(tmp_path, (Split(train.texts[1:], train.labels[1:], train.source), dev), stop_after=8)
    teacher, result, steps = finetune(tmp_path, splits)
    assert steps == TOTAL_STEPS
    assert "ignoring the training state" in capsys.readouterr().out
    assert_same_run(uninterrupted, (tmp_path, teacher, result))


def test_killed_between_the_state_swaps_renames(tmp_path: Path, splits: tuple[Split, Split],
                                                uninterrupted: tuple[Path, HFTeacher, dict]) -> None:
    """Killed while swapping in a new state (the old one moved to `.old`, the new one still in
    `.tmp`), the run resumes from the old state, and still ends bit-identical to run A."""
    with pytest.raises(Interrupted):
        finetune(tmp_path, splits, stop_after=19)
    state = tmp_path / "train_state"
    state.rename(tmp_path / "train_state.old")
    (tmp_path / "train_state.tmp").mkdir()
    (tmp_path / "train_state.tmp" / "model.safetensors").write_bytes(b"half a file")
    assert saved_at(tmp_path) == (1, 5)  # killed in step 19: the state of step 18 (epoch 2, step 5)
    teacher, result, steps = finetune(tmp_path, splits)
    assert steps == TOTAL_STEPS - 18
    assert_same_run(uninterrupted, (tmp_path, teacher, result))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_teacher_stage_resumes_in_its_partial_folder(tmp_path: Path, splits: tuple[Split, Split],
                                                     uninterrupted: tuple[Path, HFTeacher, dict]) -> None:
    """Through the cached teacher stage: a killed stage keeps its `.partial` folder, the rerun
    resumes there, and the committed stage holds the model and meta.json, no training state."""
    store, task, cfg = Store(tmp_path / "cache"), TASKS.get("sst2"), RunConfig(seed=SEED, teacher=CFG)
    counter = StepCounter(stop_after=9)
    handle = register_optimizer_step_post_hook(counter)
    try:
        with pytest.raises(Interrupted):
            teacher_stage(store, task, cfg, *splits)
    finally:
        handle.remove()
    (partial,) = (tmp_path / "cache" / "teacher").iterdir()
    assert partial.name.endswith(".partial") and saved_at(partial) == (0, 6)
    folder, meta = teacher_stage(store, task, cfg, *splits)
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "meta.json", "model"]
    assert without_seconds(meta["history"]) == without_seconds(uninterrupted[2]["history"])
    best_a, best_b = (load_file(w / "model" / "model.safetensors") for w in (uninterrupted[0], folder))
    assert all(torch.equal(best_a[k], best_b[k]) for k in best_a)


def test_labelling_settings_do_not_change_what_resumes() -> None:
    """A state saved before `--set teacher.label_backend=onnx` (or another label batch) still resumes: labelling is
    not fine-tuning; the learning rate is."""
    lengths, labels = [5, 7, 3], np.array([0, 1, 0])
    base = teachers.hf.run_fingerprint(TeacherConfig(), 13, lengths, labels, 10)
    labelling = TeacherConfig(label_backend="onnx", label_batch_size=64)
    assert teachers.hf.run_fingerprint(labelling, 13, lengths, labels, 10) == base
    assert teachers.hf.run_fingerprint(TeacherConfig(lr=1e-4), 13, lengths, labels, 10) != base
