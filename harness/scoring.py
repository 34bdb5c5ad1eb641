"""Scoring every trained model of a task: its outputs on every split (kept as per-example predictions),
its scores (the means over seeds, with their spread, intervals and paired tests), and its size and speed.
`harness/pipeline.py` trains; this module scores what it trained."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness.core.config import RunConfig
from harness.core.metrics import improved, predictions, score_outputs
from harness.core.registry import REFERENCES, STUDENTS
from harness.data.tasks import Split, Task, score_name
from harness.engine import model_card, stages
from harness.results import samples, significance
from harness.speed import efficiency


def model_dir(models_out: Path, name: str, seed: int, several: bool) -> Path:
    """Where a trained model lands: models/<task>/<name>/, or .../<name>/seed-<S>/ with several seeds."""
    return models_out / name / f"seed-{seed}" if several else models_out / name


def scored_splits(task: Task, splits: dict[str, Split]) -> list[tuple[str, Split]]:
    """(score name, split) of every evaluation split that has labels: the selection split when there is
    one, dev (and MNLI's dev_mismatched) always, test where the file has labels."""
    return [(name, split) for name, split in output_splits(task, splits) if split.labels is not None]


def output_splits(task: Task, splits: dict[str, Split]) -> list[tuple[str, Split]]:
    """(score name, split) of every split a model predicts after training: those scored_splits scores,
    and a test split without labels (its predictions are kept, for GLUE's submission)."""
    named = [(name, splits.get(name)) for name in ("selection", *task.eval_splits)]
    return [(score_name(name), split) for name, split in named if split is not None]


def model_outputs(predictor, task: Task, splits: dict[str, Split]) -> tuple[dict[str, np.ndarray], list[dict] | None]:
    """A model's raw outputs on every output split; for an ensemble also each member's scores (each
    member runs once: the ensemble's outputs are their mean)."""
    named = output_splits(task, splits)
    if not isinstance(predictor, stages.TeacherEnsemble):
        return {name: predictor.logits(split.texts, model_card.SCORE_BATCH) for name, split in named}, None
    outputs, members = {}, [{} for _ in predictor.members]
    for name, split in named:
        each = [member.logits(split.texts, model_card.SCORE_BATCH) for member in predictor.members]
        outputs[name] = np.mean(each, axis=0)
        for out, logits in zip(members, each):
            if split.labels is not None:
                out[name] = score_outputs(task.metrics, split.labels, logits)
    return outputs, members


def scores_of(task: Task, splits: dict[str, Split], outputs: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Scores of a model's outputs on every split that has labels."""
    return {name: score_outputs(task.metrics, split.labels, outputs[name]) for name, split in scored_splits(task, splits)}


def score_models(task: Task, splits: dict[str, Split], cfg: RunConfig, predictors: dict[str, dict[int, object]],
                 models_out: Path, variants: dict, per_seed_teacher: bool, several: bool, out: Path) -> dict:
    """Every trained model's entry in results: its scores (means over seeds), their spread, intervals and
    paired tests (harness/results/significance.py; `vs_best`: each student against the run's most accurate one
    on dev, so the report can say which students are within noise of it), and the first seed's size and speed. Each model's
    outputs on every split are kept as per-example predictions (harness/results/samples.py)."""
    folder = samples.task_folder(out, task.name)
    samples.write_examples(folder, task.text_columns, output_splits(task, splits))
    labelled = {name: np.asarray(split.labels) for name, split in scored_splits(task, splits) if name != "selection"}
    models, preds = {}, {}
    for model_name, by_seed in predictors.items():
        start = time.perf_counter()
        outputs, members = {}, None
        for s, predictor in by_seed.items():
            outputs[s], members = model_outputs(predictor, task, splits)
        samples.write_model(folder, model_name, outputs)
        per_seed = {s: scores_of(task, splits, o) for s, o in outputs.items()}
        dirs = {s: model_dir(models_out, model_name, s, per_seed_teacher if model_name == "teacher" else several)
                for s in by_seed}
        entry = score_and_time(model_name, by_seed, task, splits, cfg, dirs, variants.get(model_name),
                               significance.mean_scores(per_seed), {s: o["dev"] for s, o in outputs.items()})
        if len(per_seed) > 1:
            entry["seeds"] = {str(s): scores for s, scores in per_seed.items()}
            entry["spread"] = significance.spread(per_seed)
        if members is not None:
            entry["members"] = [{"checkpoint": run.teacher.checkpoint, "seed": run.seed, "scores": m}
                                for run, m in zip(cfg.teacher_runs(), members)]
        preds[model_name] = {split: np.stack([predictions(outputs[s][split]) for s in by_seed], axis=1) for split in labelled}
        if cfg.stats.resamples:
            entry["intervals"] = significance.intervals(task.metrics, labelled, preds[model_name], cfg.stats.resamples,
                                                        cfg.seed)
        entry["eval_seconds"] = round(time.perf_counter() - start, 2)
        models[model_name] = entry
    if cfg.stats.resamples:
        for model_name, against in pairs(models, variants).items():
            models[model_name]["test"] = significance.paired(task.metrics, labelled, preds[model_name], preds[against],
                                                             against, cfg.stats.resamples, cfg.seed)
        best = best_student(models, variants, task.metrics[0])
        for model_name in students_of(models, variants) if best and "dev" in labelled else ():
            if model_name != best:  # is it behind the run's most accurate student, or within noise of it?
                models[model_name]["vs_best"] = significance.paired(task.metrics, {"dev": labelled["dev"]}, preds[model_name],
                                                                    preds[best], best, cfg.stats.resamples, cfg.seed)
    return models


def students_of(models: dict, variants: dict) -> list[str]:
    """The run's students (registered, not ablation variants) among `models`."""
    return [n for n in models if n not in variants and n in STUDENTS]


def best_student(models: dict, variants: dict, metric: str) -> str | None:
    """The student with the best mean dev `metric` (in the metric's direction; the first on a tie); None
    when fewer than two students were scored, or none has a defined dev score."""
    scored = [(n, models[n]["scores"].get("dev", {}).get(metric, math.nan)) for n in students_of(models, variants)]
    scored = [(n, v) for n, v in scored if not math.isnan(v)]
    if len(scored) < 2:
        return None
    best = scored[0]
    for name, value in scored[1:]:
        best = (name, value) if improved(metric, value, best[1]) else best
    return best[0]


def pairs(models: dict, variants: dict) -> dict[str, str]:
    """model -> the model its paired test is against: a variant's base; a distilled student's label-only
    student of the same family and columns (e.g. bilstm_soft -> bilstm)."""
    out = {name: v["base"] for name, v in variants.items() if v["base"] in models}
    students = students_of(models, variants)
    for name in students:
        spec = STUDENTS.get(name)
        if spec.distill:
            plain = [n for n in students if not STUDENTS.get(n).distill and STUDENTS.get(n).arch == spec.arch
                     and STUDENTS.get(n).columns == spec.columns]
            if plain:
                out[name] = plain[0]
    return out


def score_and_time(name: str, by_seed: dict[int, object], task: Task, splits: dict[str, Split], cfg: RunConfig,
                   dirs: dict[int, Path], variant: dict | None, scores: dict, dev_outputs: dict[int, np.ndarray]) -> dict:
    """A trained model's entry: its scores and, unless it is an ablation variant (timed as its base), the first
    seed's size and speed (ONNX exports go into each seed's saved model folder, `dirs`), and each ONNX backend's
    dev scores over every seed of a student (a teacher's first), against `dev_outputs`, the seeds' PyTorch fp32
    outputs."""
    entry = {"kind": "teacher" if name == "teacher" else "student", "scores": scores}
    print(f"[evaluate] {name}: {entry['scores']}", flush=True)
    first = next(iter(by_seed))
    if variant is not None:
        entry["variant"] = variant
    elif cfg.measure.enabled:
        # a student's other seeds on each backend too; a teacher's (teacher.per_seed) not: each export costs minutes
        seeds = [first] if entry["kind"] == "teacher" else list(by_seed)
        score = backend_dev(task, splits["validation"], [dev_outputs[s] for s in seeds],
                            [(by_seed[s], dirs[s]) for s in seeds[1:]], cfg)
        entry.update(efficiency.measure_model(name, entry["kind"], by_seed[first], cfg.measure, splits["validation"],
                                              splits["train"], dirs[first], score))
    return entry


def backend_dev(task: Task, dev: Split, fp32_dev: list[np.ndarray], others: list[tuple[object, Path]],
                cfg: RunConfig) -> Callable[[object, Callable], dict]:
    """What a model's other backend (ONNX fp32, int8) records beside its timing: its `scores` on dev, the mean
    over seeds as the PyTorch scores are (the timed first seed's, then each of `others`: (predictor, folder),
    exported into its folder), and, when the run tests (`stats.resamples`), its paired `test` on the same dev
    examples and seeds against `fp32_dev`, the seeds' PyTorch fp32 outputs: what int8 costs in points, and
    whether that is more than noise."""
    labels = {"dev": np.asarray(dev.labels)}

    def score(runner, same_backend: Callable) -> dict:
        runners = [runner, *(same_backend(predictor, folder) for predictor, folder in others)]
        outputs = [r.logits(dev.texts, model_card.SCORE_BATCH) for r in runners]
        per_seed = {i: {"dev": score_outputs(task.metrics, dev.labels, o)} for i, o in enumerate(outputs)}
        entry = {"scores": significance.mean_scores(per_seed)["dev"], "seeds_scored": len(outputs)}
        if cfg.stats.resamples:
            stacked = [np.stack([predictions(o) for o in outs], axis=1) for outs in (outputs, fp32_dev)]
            entry["test"] = significance.paired(task.metrics, labels, {"dev": stacked[0]}, {"dev": stacked[1]},
                                                "torch fp32", cfg.stats.resamples, cfg.seed)
        return entry

    return score


def time_reference(name: str, task: Task, cfg: RunConfig, dev: Split, train: Split) -> dict:
    """A timing-only reference model (random weights): size and speed, and the literature's score."""
    start = time.perf_counter()
    spec = REFERENCES.get(name)
    entry = {"kind": "reference", "scores": {}, "reported": spec.reported.get(task.name), "description": spec.description}
    entry.update(efficiency.measure_model(name, "reference", spec.build(task.num_labels), cfg.measure, dev, train, None))
    entry["eval_seconds"] = round(time.perf_counter() - start, 2)
    return entry
