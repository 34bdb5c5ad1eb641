"""A resumable training state without pickle: tensors in safetensors files, everything else in JSON.

A state folder holds `model.safetensors` (the weights), `optimizer.safetensors` (each parameter's
optimizer tensors keyed `<parameter name>/<field>`: exp_avg, exp_avg_sq and step for AdamW; a model may
have several optimizers, each parameter in one),
`rng.safetensors` (torch's generator states) and `state.json` (the optimizer's param groups and any
non-tensor per-parameter values, the scheduler's state, and the caller's progress), and any further
tensors the caller keeps (`<name>.safetensors`: a student's best weights so far). A state is
written whole into a temp folder and swapped in, so a kill at any moment leaves a complete state:
the new one, the old one, or (killed between the swap's two renames) the old one under `.old`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from harness.engine import device

Optimizers = torch.optim.Optimizer | list[torch.optim.Optimizer]

FORMAT = 2  # 2: a list of optimizers' param groups (1 held one optimizer's)
FILES = ("model.safetensors", "optimizer.safetensors", "rng.safetensors", "state.json")


def save(folder: Path, model: torch.nn.Module, opt: Optimizers, sched: Any, progress: dict[str, Any],
         extra: dict[str, dict[str, torch.Tensor]] | None = None) -> None:
    """Write the training state into `folder`, replacing the one there atomically.

    Args:
        folder: the state folder.
        model: the model being trained.
        opt: its optimizer, or a list of them (each parameter in one).
        sched: its learning-rate scheduler (a torch LRScheduler), or None.
        progress: JSON-serialisable progress of the caller's loop (epoch, step, history, ...).
        extra: more tensors to keep, each dict written as `<name>.safetensors` (e.g. the best weights so far).
    """
    tmp, old = _siblings(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "model.safetensors"))
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    groups = []
    for o in _listed(opt):
        names, opt_state = _param_names(model, o), o.state_dict()
        groups.append(opt_state["param_groups"])
        for index, fields in opt_state["state"].items():
            for field, value in fields.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{names[index]}/{field}"] = value.detach().cpu().contiguous()
                else:
                    scalars.setdefault(names[index], {})[field] = value
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    save_file(_rng_states(), str(tmp / "rng.safetensors"))
    for name, more in (extra or {}).items():
        save_file({k: v.detach().cpu().contiguous() for k, v in more.items()}, str(tmp / f"{name}.safetensors"))
    meta = {"format": FORMAT, "param_groups": groups, "optimizer_scalars": scalars,
            "scheduler": sched.state_dict() if sched is not None else None, "progress": progress}
    (tmp / "state.json").write_text(json.dumps(meta))
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def find(folder: Path) -> Path | None:
    """The complete state folder: `folder`, else its `.old` copy; None when there is neither."""
    for path in (folder, _siblings(folder)[1]):
        if all((path / name).is_file() for name in FILES):
            return path
    return None


def resumable(folder: Path, run: dict[str, Any], who: str) -> tuple[Path, dict[str, Any]] | None:
    """The state folder and progress that an interrupted training of the same `run` saved in `folder`; None when
    there is none (a state of another run is deleted, saying so). Every rank has read it before rank 0 may delete it."""
    path = find(folder)
    done = read_progress(path) if path else None
    device.barrier()
    if done is None or done["run"] != run:
        if path:
            print(f"[{who}] ignoring the training state in {folder}: it is of another run", flush=True)
        if device.current().main:
            clear(folder)
        return None
    return path, done


def read_progress(path: Path) -> dict[str, Any] | None:
    """The progress saved in the state folder `path`; None when it is of another format."""
    meta = json.loads((path / "state.json").read_text())
    return meta["progress"] if meta.get("format") == FORMAT else None


def restore(path: Path, model: torch.nn.Module, opt: Optimizers, sched: Any) -> None:
    """Load the state folder `path` (from `find`) into the model, optimizer(s), scheduler and torch's
    generators; `opt` and `sched` must be built as for the run that saved it."""
    meta = json.loads((path / "state.json").read_text())
    load_model(model, path / "model.safetensors")
    saved = load_file(path / "optimizer.safetensors")
    for o, groups in zip(_listed(opt), meta["param_groups"], strict=True):
        index = {name: i for i, name in enumerate(_param_names(model, o))}
        state: dict[int, dict[str, Any]] = {}
        for key, value in saved.items():
            name, field = key.rsplit("/", 1)
            if name in index:
                state.setdefault(index[name], {})[field] = value
        for name, fields in meta["optimizer_scalars"].items():
            if name in index:
                state.setdefault(index[name], {}).update(fields)
        groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in groups]
        o.load_state_dict({"state": state, "param_groups": groups})
    if sched is not None:
        sched.load_state_dict(meta["scheduler"])
    rng = load_file(path / "rng.safetensors")
    torch.set_rng_state(rng["torch"])
    cuda = [rng[f"cuda.{i}"] for i in range(len(rng) - 1)]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def extra(path: Path, name: str) -> dict[str, torch.Tensor]:
    """The tensors `save` kept under `name` in the state folder `path`."""
    return load_file(path / f"{name}.safetensors")


def clear(folder: Path) -> None:
    """Delete the state folder and any temp or old copy of it."""
    for path in (folder, *_siblings(folder)):
        shutil.rmtree(path, ignore_errors=True)


def _siblings(folder: Path) -> tuple[Path, Path]:
    """The temp folder a new state is written into, and the name the old state is moved to."""
    return folder.with_name(f"{folder.name}.tmp"), folder.with_name(f"{folder.name}.old")


def _listed(opt: Optimizers) -> list[torch.optim.Optimizer]:
    return list(opt) if isinstance(opt, list | tuple) else [opt]


def _param_names(model: torch.nn.Module, opt: torch.optim.Optimizer) -> list[str]:
    """The model's name of each optimizer parameter, in the optimizer's state_dict order."""
    by_id = {id(p): name for name, p in model.named_parameters()}
    return [by_id[id(p)] for group in opt.param_groups for p in group["params"]]


def _rng_states() -> dict[str, torch.Tensor]:
    """Torch's CPU generator state, and each CUDA device's when CUDA is in use (uint8 tensors)."""
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return states
