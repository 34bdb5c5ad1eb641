"""`harness run`: for each task, teacher -> augment -> label -> students -> evaluate -> measure,
then results.json, report.md, the plot, and the trained models under the output folder."""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from pathlib import Path

from harness import efficiency, stages
from harness.augment import use_nltk_data
from harness.cache import Store, write_json_atomic
from harness.config import RunConfig
from harness.env import environment
from harness.errors import HarnessError
from harness.metrics import score
from harness.registry import REFERENCES, TASKS, TEACHERS
from harness.report import write_report
from harness.tasks import REPO_ROOT, Split, Task, candidate_dirs, load_task
from harness.wordmodel import load_student


def evaluate(predictor, task: Task, splits: dict[str, Split]) -> dict[str, dict[str, float]]:
    """Scores on every split that has labels (dev always; test where the file has them)."""
    out = {}
    for name in ("validation", "test"):
        split = splits.get(name)
        if split is not None and split.labels is not None:
            preds = predictor.logits(split.texts, 256).argmax(-1)
            out["dev" if name == "validation" else "test"] = score(task.metrics, split.labels, preds)
    return out


def run_task(name: str, cfg: RunConfig, store: Store, out: Path, data_dir: str | None) -> dict:
    task: Task = TASKS.get(name)
    splits = load_task(name, data_dir)
    if "train" not in splits or splits["train"].labels is None:
        raise HarnessError(f"task {name}: no labelled training split found")
    train = splits["train"].head(cfg.train_limit)
    splits["validation"] = splits["validation"].head(cfg.dev_limit)
    dev = splits["validation"]
    print(f"== {name}: {len(train)} train, {len(dev)} dev ({train.source})", flush=True)

    teacher_dir, teacher_meta = stages.teacher_stage(store, task, cfg, train, dev)
    augment_dir, augment_meta = stages.augment_stage(store, task, cfg, train)
    label_dir, label_meta = stages.label_stage(store, cfg, task, teacher_dir, augment_dir)
    stage_meta = {"teacher": teacher_meta, "augment": augment_meta, "label": label_meta}

    models_out = out / "models" / name
    teacher = stages.load_teacher(teacher_dir, cfg)
    copy_model(teacher_dir / "model", models_out / "teacher")
    predictors = {"teacher": teacher}
    for student in cfg.students:
        student_dir, meta = stages.student_stage(store, student, task, cfg, dev, len(train), teacher_dir, augment_dir, label_dir)
        stage_meta[student] = meta
        copy_model(student_dir / "model", models_out / student)
        predictors[student] = load_student(student_dir / "model")

    results = {"data": {"train": len(train), "dev": len(dev), "source": train.source}, "config": asdict(cfg),
               "stages": stage_meta, "models": {}}
    for model_name, predictor in predictors.items():
        start = time.perf_counter()
        entry = {"kind": "teacher" if model_name == "teacher" else "student", "scores": evaluate(predictor, task, splits)}
        print(f"[evaluate] {model_name}: {entry['scores']}", flush=True)
        if cfg.measure.enabled:
            entry.update(efficiency.measure_model(model_name, entry["kind"], predictor, cfg.measure, dev, train,
                                                  models_out / model_name, lambda p: evaluate(p, task, splits)["dev"]))
        entry["eval_seconds"] = round(time.perf_counter() - start, 2)
        results["models"][model_name] = entry
    for ref_name in cfg.measure.references if cfg.measure.enabled else ():
        start = time.perf_counter()
        spec = REFERENCES.get(ref_name)
        entry = {"kind": "reference", "scores": {}, "reported": spec.reported.get(name), "description": spec.description}
        entry.update(efficiency.measure_model(ref_name, "reference", spec.build(task.num_labels), cfg.measure, dev, train, None))
        entry["eval_seconds"] = round(time.perf_counter() - start, 2)
        results["models"][ref_name] = entry
    if cfg.measure.enabled and efficiency.cuda_note(cfg.measure):
        results["measure_notes"] = [efficiency.cuda_note(cfg.measure)]
    return results


def copy_model(src: Path, dst: Path) -> None:
    """Place a trained model under the run's models/ folder (replacing an older copy atomically)."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)


def run(cfg: RunConfig, suite_info: dict, out: Path, cache_dir: Path, data_dir: str | None, threads: int) -> dict:
    """Run every task of `cfg`, then write results.json, report.md and plot.png into `out`."""
    start = time.perf_counter()
    use_nltk_data([root for _, root in candidate_dirs(data_dir)])
    TEACHERS.get(cfg.teacher.name)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        **suite_info,
        "config": asdict(cfg),
        "seed": cfg.seed,
        "environment": {**environment(REPO_ROOT), "torch_threads": threads},
        "tasks": {name: run_task(name, cfg.for_task(name), Store(cache_dir), out, data_dir) for name in cfg.tasks},
    }
    results["wall_seconds"] = round(time.perf_counter() - start, 2)
    write_json_atomic(out / "results.json", results)
    write_report(results, out)
    return results

