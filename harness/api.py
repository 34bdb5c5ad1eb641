"""The Python API; the command line (harness/cli.py) is a thin layer over it.

    import harness
    harness.plan(suite="glue", preset="smoke", tasks=["sst2"])  # what run would compute or reuse; runs nothing
    results = harness.run(suite="glue", preset="smoke", tasks=["sst2"], overrides={"student.hidden": 64},
                          out="runs/mine")
    predictor, card = harness.load_model("runs/mine/models/sst2/bilstm_soft")
    scores = harness.predict("runs/mine/models/sst2/bilstm_soft", "../shared/data/SST-2/dev.tsv")
    harness.predict_texts("runs/mine/models/sst2/bilstm_soft", ["a gripping , funny film"])  # [{"prediction": ...}]
    timing = harness.measure("runs/mine/models/sst2/bilstm_soft", backend="onnx-int8")
    harness.ls("students")  # {"bilstm": "students.bilstm (entry point kd_harness.students:bilstm of kd-harness)", ...}
    print(harness.compare(["runs/before", "runs/mine"]))  # markdown: shared rows with deltas, then how the runs differ
    harness.report("runs/mine")  # report.md and the plots again from results.json

Every function loads the plugins first (harness/core/plugins.py; `plugins=` adds modules of your own) and
raises `harness.core.errors.HarnessError` with the same one-line messages the command line prints. `run`
checks every name, setting and student-task fit before any work, as the command line does.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

KINDS = ("tasks", "teachers", "students", "references")


def start(plugins: Iterable[str] = (), source: str = "plugins=") -> None:
    """Quiet the libraries' own progress output and load the plugins: the built-in ones, every
    installed entry point, then `plugins` (module names). Safe to call more than once."""
    import importlib.util

    import transformers

    from harness.core.plugins import load_modules, load_plugins

    if importlib.util.find_spec("datasets"):  # only runs that read the hub need it
        import datasets

        datasets.disable_progress_bars()  # its per-file bars would bury our own progress and errors
    transformers.logging.set_verbosity_error()  # "classifier weights newly initialised" is expected
    transformers.logging.disable_progress_bar()  # a "Loading weights" bar at every teacher load (ours are tqdm's own)
    load_plugins()
    load_modules(list(plugins), source)


def configure(suite: str = "glue", preset: str | None = None, tasks: Iterable[str] | str | None = None,
              students: Iterable[str] | str | None = None, overrides: dict[str, Any] | None = None,
              plugins: Iterable[str] = (), seeds: Iterable[int] | str | None = None):
    """The run's config (a RunConfig) and its description for results.json, checked as `run` checks it.

    Args:
        suite: a suite in harness/core/suites/ (`glue`) or a YAML path.
        preset: one of the suite's presets (`smoke`, `quick`, `full`).
        tasks, students: override the suite's (a list, or comma-separated).
        overrides: dotted settings, as `--set` takes them: {"student.hidden": 300, "teacher.epochs": 2}.
        plugins: modules to import before the suite is read (also a suite's own `plugins:`).
        seeds: student seeds (a list, or comma-separated): each student trains once per seed, and the
            scores are their means with the spread (`teacher.per_seed` repeats the teacher too).
    """
    from harness.core.config import load_suite

    sets = dict(overrides or {})
    for key, value in (("tasks", tasks), ("students", students), ("seeds", seeds)):
        if value is not None:
            sets[key] = value if isinstance(value, str) else ",".join(map(str, value))
    plugins = list(plugins)
    start(plugins)  # (the command line has loaded its --plugins already, under that name)
    cfg, info = load_suite(suite, preset, sets)
    start(cfg.plugins, f"suite {info['suite']}: plugins")
    check(cfg, cli_sets=sets)
    return cfg, {**info, **({"plugins": plugins} if plugins else {})}


def check(cfg, cli_sets: dict[str, Any] | None = None) -> None:
    """Every name the run uses is registered, every setting reaches a student that has it, and every
    student and variant fits its task, before any work.

    Raises:
        HarnessError: naming what is wrong and where it was set.
    """
    from harness.core.registry import REFERENCES, STUDENTS, TASKS, TEACHERS
    from harness.core.variants import check_arch_settings, check_registered, student_jobs
    from harness.engine.student_stage import check_job_fits

    TEACHERS.get(cfg.teacher.name)
    for name in sorted({*cfg.tasks, *cfg.per_task}):  # a task's own settings too, run or not
        check_arch_settings(cfg.for_task(name).student.arch, f"per_task.{name}.student")
    chosen = set()
    for name in cfg.tasks:
        task_cfg = cfg.for_task(name)
        TASKS.get(name)
        for student in task_cfg.students:
            STUDENTS.get(student)
        check_registered(task_cfg)
        for job in student_jobs(task_cfg, len(TASKS.get(name).text_columns)):
            check_job_fits(job, TASKS.get(name))
            chosen.add(job.base)
    set_here = {k.partition(".")[2]: v for k, v in (cli_sets or {}).items() if k.startswith("student.")}
    check_arch_settings(set_here, "--set student", sorted(chosen))  # a setting given here reaches a student of the run
    for name in cfg.measure.references:
        REFERENCES.get(name)


def run(suite: str = "glue", preset: str | None = None, tasks: Iterable[str] | str | None = None,
        students: Iterable[str] | str | None = None, overrides: dict[str, Any] | None = None,
        out: str | Path | None = None, cache_dir: str | Path = "runs/cache", data_dir: str | None = None,
        device: str = "auto", plugins: Iterable[str] = (), seeds: Iterable[int] | str | None = None) -> dict:
    """Run a suite end to end (`harness run`) and return its results (what results.json holds).

    Args:
        suite, preset, tasks, students, overrides, plugins, seeds: as for `configure`.
        out: the output folder (default: runs/<suite>-<preset>).
        cache_dir: the stage cache, shared by runs.
        data_dir: a folder in GLUE's layout (default: $HARNESS_DATA, else ../shared/data, then the hub).
        device: auto, cpu, cuda or cuda:K.
    """
    from harness.engine import device as devices
    from harness.pipeline import run as run_pipeline
    from harness.speed.measure import set_threads, usable_cores

    cfg, info = configure(suite, preset, tasks, students, overrides, plugins, seeds)
    rt = devices.setup(device)
    threads = set_threads(cfg.measure.threads or max(1, usable_cores() // rt.local_world))  # each process its share
    out = Path(out) if out is not None else Path("runs") / f"{info['suite']}-{preset or 'default'}"
    return run_pipeline(cfg, info, out, Path(cache_dir), data_dir, threads)


def plan(suite: str = "glue", preset: str | None = None, tasks: Iterable[str] | str | None = None,
         students: Iterable[str] | str | None = None, overrides: dict[str, Any] | None = None,
         cache_dir: str | Path = "runs/cache", data_dir: str | None = None, device: str = "auto",
         plugins: Iterable[str] = (), seeds: Iterable[int] | str | None = None) -> dict[str, list[dict]]:
    """What `run` with the same arguments would do, computing and writing nothing (`harness run --dry-run`).

    Returns:
        For each task with data, its stages in the order the run meets them: {"name" (as results.json names
        it), "stage", "key", "state"}. The state is `cached` (with the `seconds` and `peak_rss_gb` it took),
        `to compute`, `resumes` (a killed run's work folder is there), `damaged` (discarded and computed again;
        `why`) or `same as above` (an entry met twice, computed once). The device counts: labelling batches
        differ on a GPU, and so do their keys.
    """
    import os

    from harness.core.errors import HarnessError
    from harness.engine import device as devices
    from harness.pipeline import plan as plan_pipeline

    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        raise HarnessError("a dry run plans in one process: run it without torchrun")
    cfg, info = configure(suite, preset, tasks, students, overrides, plugins, seeds)
    devices.setup(device)
    stages = plan_pipeline(cfg, info, Path(cache_dir), data_dir)
    return {task: [{"name": name, **state} for name, state in steps.items()] for task, steps in stages.items()}


def load_model(folder: str | Path, plugins: Iterable[str] = ()):
    """A model folder written by `run` (<out>/models/<task>/<name>) -> (predictor, its card). The
    predictor's `logits(texts, batch_size)` takes tuples of strings, one per text column."""
    from harness.engine.predict import load_model as load

    start(plugins)
    return load(Path(folder))


def predict(model: str | Path, input: str | Path, output: str | Path | None = None, device: str = "auto",  # noqa: A002
            plugins: Iterable[str] = ()) -> dict | None:
    """Predict every row of a GLUE-style TSV (`harness predict`); writes GLUE's submission format to
    `output` when given. Returns the task's metrics when the file has labels, else None."""
    from harness.engine import device as devices
    from harness.engine.predict import predict as predict_file

    start(plugins)
    devices.setup(device)
    return predict_file(Path(model), Path(input), None if output is None else Path(output))


def predict_texts(model: str | Path, texts: Iterable[str], device: str = "auto", plugins: Iterable[str] = ()) -> list[dict]:
    """The model's prediction for each text (a pair task's two texts joined by a tab), as `harness predict --text`:
    `[{"text": ..., "prediction": "positive" (a label name, a class index, or a score), "outputs": [logits]}]`."""
    from harness.engine import device as devices
    from harness.engine.predict import predict_texts as predict_each

    start(plugins)
    devices.setup(device)
    return predict_each(Path(model), list(texts))


def measure(model: str | Path, backend: str = "torch", regime: str = "interactive", device: str = "cpu",
            n: int | None = None, threads: int | None = None, data_dir: str | None = None,
            plugins: Iterable[str] = ()) -> dict:
    """Time one model (`harness measure`): a trained model folder or a reference's name.

    Args:
        backend: torch, onnx or onnx-int8 (students).
        regime: interactive (batch 1) or offline (batches of 512).
        threads: intra-op threads (default: 1 for interactive, all usable cores for offline).
        n: sentences to time (default: the command line's).
    """
    from harness.core.config import MeasureConfig
    from harness.core.errors import HarnessError
    from harness.data.augment import use_nltk_data
    from harness.data.tasks import nltk_roots
    from harness.speed.efficiency import measure_one
    from harness.speed.measure import set_threads

    if (threads is not None and threads < 0) or (n is not None and n < 1):
        raise HarnessError("--threads must be >= 0 and --n >= 1")
    start(plugins)
    default = MeasureConfig().interactive_threads if regime == "interactive" else 0
    set_threads(default if threads is None else threads)
    use_nltk_data(nltk_roots(data_dir))
    return measure_one(str(model), backend, regime, device, n, data_dir)


def ls(kind: str, plugins: Iterable[str] = ()) -> dict[str, str]:
    """Registered names of `kind` (tasks, teachers, students, references), each with where it came from."""
    from harness.core.errors import HarnessError
    from harness.core.registry import REFERENCES, STUDENTS, TASKS, TEACHERS

    if kind not in KINDS:
        raise HarnessError(f"ls: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    start(plugins)
    registry = dict(zip(KINDS, (TASKS, TEACHERS, STUDENTS, REFERENCES)))[kind]
    return {name: registry.origin(name) for name in registry.names()}


def compare(runs: Iterable[str | Path], labels: Iterable[str] | None = None) -> str:
    """The shared (task, model, score) rows of several runs (folders or results.json files) side by side, with
    each run's difference from the first, then how the runs differ (harness/results/compare.py), as markdown."""
    from harness.core.errors import HarnessError
    from harness.results.compare import compare as compare_runs

    runs, labels = [Path(r) for r in runs], (list(labels) if labels is not None else None)
    if labels is not None and len(labels) != len(runs):
        raise HarnessError(f"--labels has {len(labels)} names for {len(runs)} runs")
    return compare_runs(runs, labels)


def report(run: str | Path) -> Path:
    """Write report.md and the plots of a run folder again from its results.json; returns report.md's path."""
    from harness.core.errors import HarnessError
    from harness.results.compare import load_results
    from harness.results.report import write_report

    run = Path(run)
    results = load_results(run)
    try:
        write_report(results, run)
    except (KeyError, TypeError, AttributeError, ValueError) as e:  # valid JSON, but not what `run` writes
        raise HarnessError(f"{run}: results.json lacks what a report needs ({type(e).__name__}: {e}); "
                           "pass a run folder written by `harness run`") from None
    return run / "report.md"
