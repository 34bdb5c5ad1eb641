"""`harness run`: for each task, teacher -> augment -> label -> students -> evaluate -> measure,
then results.json, report.md, the plot, and the trained models under the output folder."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.core import memory, progress
from harness.core.config import RunConfig
from harness.core.errors import HarnessError, watched, writing
from harness.core.registry import STUDENTS, TASKS, TEACHERS
from harness.core.variants import ablation_jobs, student_jobs
from harness.data.augment import use_nltk_data
from harness.data.split import SELECTION_RULE, TREE_RULE, selection_split
from harness.data.tasks import REPO_ROOT, NoData, Split, Task, load_task, nltk_roots
from harness.engine import device, manifest, model_card, stages, transfer
from harness.engine.cache import Store, write_json_atomic
from harness.engine.label import read_transfer_set, rows
from harness.engine.student_stage import TransferData, student_stage
from harness.engine.wordmodel import load_student
from harness.results.report import write_report
from harness.scoring import model_dir, score_models, time_reference
from harness.speed import efficiency
from harness.speed.env import environment


def load_splits(task: Task, cfg: RunConfig, data_dir: str | None) -> dict[str, Split]:
    """The task's splits: with `selection.on: selection`, the selection split first carved from the
    whole training file; then training (what is left) and every dev split cut to the run's limits."""
    splits = load_task(task.name, data_dir)
    if "train" not in splits or splits["train"].labels is None:
        raise HarnessError(f"task {task.name}: no labelled training split found")
    if cfg.selection.on == "selection":
        if len(splits["train"]) < 2:
            raise HarnessError(f"task {task.name}: {len(splits['train'])} training example(s) leave nothing to hold out "
                               "for the selection split; use --set selection.on=dev")
        splits["selection"], splits["train"] = selection_split(splits["train"], cfg.selection.fraction, cfg.selection.limit,
                                                               cfg.selection.unit)
    splits["train"] = splits["train"].head(cfg.train_limit)
    for name in splits:
        if name.startswith("validation"):
            splits[name] = splits[name].head(cfg.dev_limit)
    return splits


@dataclass
class Upstream:
    """What students of one teacher seed train from: the teacher run(s), their folders, the labelled
    transfer set, and each variant's own labelled synthetic rows (made on first use)."""

    runs: list[RunConfig]
    teacher_dirs: list[Path]
    data: TransferData
    own_rows: dict = field(default_factory=dict)


def seeded(stage: str, seed: int, several: bool) -> str:
    """A stage's name in results: as it is with one seed, `bilstm (seed 14)` with several."""
    return f"{stage} (seed {seed})" if several else stage



def run_task(name: str, cfg: RunConfig, store: Store, out: Path, splits: dict[str, Split]) -> dict | None:
    """One task end to end: the cached stages, then every model scored and measured. Under several
    processes every rank takes part in the stages; rank 0 alone places, scores and times the models
    (the others return None). In a dry run (`store.plan`) the stages record their keys and states, and it returns
    {"stages": each stage's state} without loading, scoring or writing anything.

    With several `seeds` every student trains once per seed on the same transfer set (and, with
    `teacher.per_seed`, each seed has its own teacher and labels); scores are the means over seeds, with
    their spread, and the first seed's models are timed."""
    rt = device.current()
    planning = store.plan is not None
    keep = rt.main and not planning  # this process places, scores and times the models
    task: Task = TASKS.get(name)
    progress.task(name)
    train, dev = splits["train"], splits["validation"]
    select = splits.get("selection", dev)  # what early stopping and checkpoints are chosen on
    inside = {split: sum(found) if found is not None else None for split, found in
              (("selection", select.inside(train)), ("dev", dev.inside(train)))} if select is not dev else {}
    phrases = f"; {inside['selection']:,} of them word for word inside a training example" if inside.get("selection") else ""
    kind = "selection split, whole trees" if cfg.selection.unit == "tree" else "selection split"
    print(f"== {name}: {len(train)} train, {len(dev)} dev ({train.source}); checkpoints chosen on "
          + (f"{len(select)} held-out training examples ({kind}{phrases})" if select is not dev else "dev"),
          flush=True)

    seeds = cfg.seed_list()
    several = len(seeds) > 1
    per_seed_teacher = cfg.teacher.per_seed and several
    stage_meta, upstream = {}, {}
    if cfg.transfer.source:  # students only, from an exported transfer set: no teacher code runs
        import_dir, stage_meta["import"] = stages.import_stage(store, task, Path(cfg.transfer.source))
        upstream[cfg.seed] = Upstream([], [], TransferData(import_dir, import_dir))
        n_originals = stage_meta["import"].get("originals", 0)  # (a dry run's stages return their state alone)
        if not planning:
            check_no_overlap(import_dir, n_originals, select, cfg)
    else:
        teacher_runs = {s: (dataclasses.replace(cfg, seed=s) if per_seed_teacher else cfg).teacher_runs()
                        for s in (seeds if per_seed_teacher else (cfg.seed,))}
        dirs = {}
        for s, runs in teacher_runs.items():
            dirs[s] = []
            for k, run in enumerate(runs, 1):
                teacher_dir, stage_meta[seeded(member_stage("teacher", k, len(runs)), s, per_seed_teacher)] = \
                    stages.teacher_stage(store, task, run, train, select)
                dirs[s].append(teacher_dir)
        augment_dir, stage_meta["augment"] = stages.augment_stage(store, task, cfg, train)
        for s, runs in teacher_runs.items():
            labels = label_all(store, runs, task, dirs[s], augment_dir, stage_meta, seeded("label", s, per_seed_teacher))
            upstream[s] = Upstream(runs, dirs[s], TransferData(augment_dir, labels))
        n_originals = len(train)

    models_out = out / "models" / name
    predictors: dict[str, dict[int, object]] = {}
    for s, up in upstream.items():
        if keep and up.teacher_dirs:
            teachers = [stages.load_teacher(d, run) for d, run in zip(up.teacher_dirs, up.runs)]
            for k, (teacher_dir, run) in enumerate(zip(up.teacher_dirs, up.runs), 1):
                member = "teacher" if len(up.runs) == 1 else f"teacher_member{k}"
                copy_model(teacher_dir / "model", model_dir(models_out, member, s, per_seed_teacher),
                           model_card.teacher_card(task, run.teacher))
            predictors.setdefault("teacher", {})[s] = teachers[0] if len(up.runs) == 1 else stages.TeacherEnsemble(teachers)
    variants = {}
    jobs = student_jobs(cfg, len(task.text_columns))
    ran = {variant for _, _, variant in ablation_jobs(cfg, len(task.text_columns))} | {job.name for job in jobs}
    skipped = [v for v in cfg.ablations if v not in ran]
    if skipped:
        kind = "pairs" if len(task.text_columns) == 2 else "single sentences"
        print(f"[ablations] {name}: skipped, no student of this task they vary takes {kind}: {', '.join(skipped)}")
    if cfg.transfer.source:
        own_rows = [job.name for job in jobs if job.augment is not None and job.transfer]
        if own_rows:
            print(f"[ablations] {name}: skipped, they need a teacher to label their own synthetic rows and this run "
                  f"imports its transfer set: {', '.join(own_rows)}")
        jobs = [job for job in jobs if job.name not in own_rows]
    roles = {"teacher": "teacher"}
    for s in seeds:
        up = upstream[s if per_seed_teacher else cfg.seed]
        for job in jobs:
            job_data = up.data
            if job.augment is not None and job.transfer:  # a variant's own synthetic rows, made and labelled once
                if job.name not in up.own_rows:
                    synthetic_dir, stage_meta[f"augment ({job.name})"] = stages.augment_stage(
                        store, task, cfg, train, job.augment, synthetic_only=True)
                    synthetic_labels = label_all(store, up.runs, task, up.teacher_dirs, synthetic_dir, stage_meta,
                                                 seeded(f"label ({job.name})", s, per_seed_teacher))
                    up.own_rows[job.name] = (synthetic_dir, synthetic_labels)
                job_data = TransferData(up.data.augment_dir, up.data.label_dir, up.own_rows[job.name])
            student_dir, stage_meta[seeded(job.name, s, several)] = student_stage(
                store, job, task, dataclasses.replace(cfg, seed=s), select, n_originals,
                up.teacher_dirs[0] if up.teacher_dirs else None, job_data, dev)
            if keep:
                copy_model(student_dir / "model", model_dir(models_out, job.name, s, several),
                           model_card.student_card(task, job.base, job.student.max_tokens))
                predictors.setdefault(job.name, {})[s] = load_student(student_dir / "model").to(rt.device)
            if job.changes:
                variants[job.name] = {"base": job.base, "changes": job.changes}
            else:
                roles[job.name] = "distilled" if STUDENTS.get(job.base).distill else "label-only"
    if planning:
        return {"stages": stage_meta}
    if not rt.main:
        return None

    models = score_models(task, splits, cfg, predictors, models_out, variants, per_seed_teacher, several, out)
    for model_name, role in roles.items():
        if model_name in models:
            models[model_name]["role"] = role
    for ref_name in cfg.measure.references if cfg.measure.enabled else ():
        models[ref_name] = time_reference(ref_name, task, cfg, dev, train)
    results = {"data": {"train": len(train), "dev": len(dev), "source": train.source,
                        "unit": "pairs" if task.is_pair else "sentences",
                        "duplicates": {"train": train.duplicates(), "dev": dev.duplicates()},  # legal, counted
                        "select_on": cfg.selection.on,
                        **({"selection": {"examples": len(select), "fraction": cfg.selection.fraction,
                                          "limit": cfg.selection.limit, "unit": cfg.selection.unit,
                                          "rule": TREE_RULE if cfg.selection.unit == "tree" else SELECTION_RULE,
                                          **({"inside_train": inside} if inside["selection"] is not None else {})}}
                           if select is not dev else {})},
               "metrics": list(task.metrics), "regression": task.is_regression, "config": asdict(cfg),
               "stages": stage_meta, "models": models}
    if several:
        results["seeds"] = list(seeds)
    if cfg.measure.enabled and efficiency.cuda_note(cfg.measure):
        results["measure_notes"] = [efficiency.cuda_note(cfg.measure)]
    return results




def member_stage(stage: str, k: int, members: int) -> str:
    """A stage's name in results: `teacher`, or `teacher (member 2)` for an ensemble's second member."""
    return stage if members == 1 else f"{stage} (member {k})"


def label_all(store: Store, runs: list[RunConfig], task: Task, teacher_dirs: list[Path], augment_dir: Path,
              stage_meta: dict, name: str) -> Path:
    """Teacher logits for a transfer set: the teacher's, or the mean of each ensemble member's (each
    member's labels cached on their own). Stage metas are recorded under `name`."""
    dirs = []
    for k, (run, teacher_dir) in enumerate(zip(runs, teacher_dirs), 1):
        label_dir, stage_meta[member_stage(name, k, len(runs))] = stages.label_stage(store, run, task, teacher_dir, augment_dir)
        dirs.append(label_dir)
    if len(dirs) == 1:
        return dirs[0]
    label_dir, stage_meta[name] = stages.ensemble_stage(store, dirs)
    return label_dir


def check_no_overlap(import_dir: Path, n_originals: int, select: Split, cfg: RunConfig) -> None:
    """An imported transfer set must not train on the examples this run chooses checkpoints on.

    Raises:
        HarnessError: some of them are among its original rows (exported under other selection settings).
    """
    if cfg.selection.on != "selection":
        return
    originals = rows(read_transfer_set(import_dir / "transfer.arrow").slice(0, n_originals))
    shared = transfer.overlap(originals, select.texts)
    if shared:
        raise HarnessError(f"transfer.source {cfg.transfer.source}: {shared} of this run's {len(select)} selection examples "
                           "are original rows of the imported transfer set, so checkpoint choice would see training "
                           "data; export it from a run with this run's selection settings (selection.*)")




def copy_model(src: Path, dst: Path, card: dict) -> None:
    """Place a trained model under the run's models/ folder (replacing an older copy atomically), with
    `card` as its harness.json: what `predict` and `measure` need to reload it as this run scored it
    (harness/engine/model_card.py). The copy is checked against the model folder's manifest before it takes
    the old one's place.

    Raises:
        HarnessError: the copy does not match (a disk that loses writes, a full disk).
    """
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(src, tmp)
        problem = manifest.problem(tmp)
        if problem:
            raise HarnessError(f"copying {src} to {dst} failed: {problem}")
        model_card.write(tmp, card)
    except BaseException:  # a full disk, say: no half-made copy stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)


def available_splits(cfg: RunConfig, data_dir: str | None, required: bool) -> tuple[dict[str, dict], dict[str, str]]:
    """Every task's splits, cut to its limits; and the tasks not run, each with why (no training data).

    Args:
        required: the tasks were named on the command line: a task without data is an error. Otherwise
            (the suite's own list, e.g. all of GLUE) it is left out and named with the reason.
    """
    splits, not_run = {}, {}
    for name in cfg.tasks:
        try:
            splits[name] = load_splits(TASKS.get(name), cfg.for_task(name), data_dir)
        except NoData as e:
            if required:
                raise
            not_run[name] = f"no training data; {e.reason}"
            print(f"== {name}: not run, no training data ({e.reason})", flush=True)
    if not splits:
        raise HarnessError(f"no task of {', '.join(cfg.tasks)} has training data: "
                           + "; ".join(f"{t}: {why}" for t, why in not_run.items()))
    return splits, not_run


def plan(cfg: RunConfig, suite_info: dict, cache_dir: Path, data_dir: str | None) -> dict[str, dict]:
    """What `run` would compute, computing and writing nothing (`harness run --dry-run`): for each task with
    data, its stages in the order a run meets them, each with its key and state (Store.state)."""
    splits, _ = available_splits(cfg, data_dir, required="tasks" in suite_info.get("set", {}))
    return plan_tasks(cfg, cache_dir, splits)


def plan_tasks(cfg: RunConfig, cache_dir: Path, splits: dict[str, dict], verify: bool = True) -> dict[str, dict]:
    """`plan` of tasks whose splits are loaded; without `verify`, cached entries are not hashed (Store.state)."""
    nowhere = Path(os.devnull)  # the run's folder: a dry run writes nothing there (a write would fail, loudly)
    return {name: run_task(name, cfg.for_task(name), Store(cache_dir, dry_run=True, verify=verify), nowhere,
                           task_splits)["stages"]
            for name, task_splits in splits.items()}


def run(cfg: RunConfig, suite_info: dict, out: Path, cache_dir: Path, data_dir: str | None, threads: int) -> dict:
    """Run every task of `cfg` that has data, then write results.json, report.md and plot.png into `out`.
    Tasks named with --tasks (`suite_info["set"]["tasks"]`) must have data; the suite's own are skipped
    when they have none, and named in the results and the report."""
    start = time.perf_counter()
    use_nltk_data(nltk_roots(data_dir))
    TEACHERS.get(cfg.teacher.name)
    splits, not_run = available_splits(cfg, data_dir, required="tasks" in suite_info.get("set", {}))
    rt = device.current()
    created = rt.main and not out.exists()
    try:  # a full, read-only or vanished folder: one line naming it (harness/core/errors.py)
        with writing(cache_dir, "--cache-dir"), writing(out, "--out"), watched(out, "--out", rt.main) as out_still_there, \
                progress.recording(out / progress.FILE) if rt.main else contextlib.nullcontext():
            if rt.main:  # the stages ahead, for `harness status` (the same keys and states as `run --dry-run`)
                with contextlib.redirect_stdout(io.StringIO()):  # (its task lines are printed again as each task starts)
                    ahead = [{"task": task, "name": name, **step}  # (each entry is checked when the run reaches it)
                             for task, steps in plan_tasks(cfg, cache_dir, splits, verify=False).items()
                             for name, step in steps.items()]
                progress.planned(ahead)
                found = sum(step["state"] == "cached" for step in ahead)
                print(f"[plan] {len(ahead)} stages: {found} from the cache, {len(ahead) - found} to compute", flush=True)
            results = {
                **suite_info,
                "config": asdict(cfg),
                "seed": cfg.seed,
                "environment": {**environment(REPO_ROOT), "torch_threads": threads, "device": str(rt.device),
                                "processes": rt.world},
                "tasks": {name: run_task(name, cfg.for_task(name), Store(cache_dir), out, task_splits)
                          for name, task_splits in splits.items()},
                **({"not_run": not_run} if not_run else {}),
            }
            results["wall_seconds"] = round(time.perf_counter() - start, 2)
            results["peak_rss_gb"] = memory.run_peak_gb()  # this process's, across every stage (harness/core/memory.py)
            if rt.main:
                out_still_there()  # not removed (and made again by a later write) while the run went on
                write_json_atomic(out / "results.json", results)
                # rendered from the file as written (its keys sorted), so `harness report` on it renders the same
                write_report(json.loads((out / "results.json").read_text()), out)
            device.barrier()  # the others end when rank 0 has written everything
    except BaseException:  # an error or an interrupt: a folder this run made holds nothing finished (the cache does)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    return results
