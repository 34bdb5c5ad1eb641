"""Command line: `python -m harness {run,status,ls,predict,measure,compare,check,report,cache,export-transfer}`.

Exit status: 0 success; 1 `check` found a regression; 2 a user error (one `error: ...` line on stderr);
3 the filesystem refused a write: full, read-only, forbidden, or a folder vanished (one `error: ...` line
naming the path and what to do; harness/core/errors.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

from harness.core.errors import DiskFault, HarnessError, describe

EPILOG = """examples:
  python -m harness run --suite glue --preset quick          # every GLUE task with data, about 1.5 h on 2 cores
  python -m harness run --suite glue --preset quick --tasks stsb   # one task (a task named here must have data)
  python -m harness run --suite glue --preset smoke --out runs/smoke
  python -m harness run --suite glue --set student.hidden=300 --set teacher.epochs=2
  python -m harness run --suite glue --preset quick --set student.hidden=300 --dry-run   # what it would reuse or compute
  python -m harness ls students                               # each with where it came from (its package)
  python -m harness run --suite glue --preset smoke --plugins my_package.students --students mine,mine_soft
  python -m harness predict --model runs/glue-quick/models/sst2/<student> --input dev.tsv
  python -m harness predict --model runs/glue-quick/models/stsb/<student> \
      --input ../shared/data/STS-B/test.tsv --output STS-B.tsv                   # GLUE submission format
  python -m harness run --suite glue --preset quick --set ablations=<variant>,<variant>   # the suite's variants:
  python -m harness compare runs/glue-quick runs/glue-full
  python -m harness check --baseline benchmarks/baseline.json runs/ci-smoke            # exit 1 on a regression
  python -m harness check --baseline benchmarks/baseline.json runs/ci-smoke --update   # re-baseline deliberately
  python -m harness measure --model runs/glue-quick/models/sst2/<student> --backend onnx-int8
  python -m harness measure --model bert_large --regime offline
  python -m harness cache verify --cache-dir runs/cache        # exit 1 if an entry is damaged
  python -m harness cache ls                                   # each entry's size and the runs in runs/ that use it
  python -m harness cache prune --keep runs/glue-quick         # also remove every entry that run does not use
  python -m harness export-transfer runs/glue-quick --task sst2 sst2-transfer   # labelled once, e.g. on a GPU...
  python -m harness run --suite glue --preset quick --tasks sst2 --set transfer.source=sst2-transfer  # ...students elsewhere
  python -m harness run --suite glue --preset quick --tasks sst2 --set 'teacher.members=[{seed: 13}, {seed: 14}]'
"""


DATA_HELP = ("folder in GLUE's layout, the only one looked in when given (default: $HARNESS_DATA when set, else "
             "../shared/data, then the Hugging Face hub)")
PLUGINS_HELP = ("comma-separated modules to import first, whose registrations add students, teachers, tasks or "
                "references (installed packages' entry points load by themselves; see README, Add your own student, "
                "teacher or task)")
DEVICE_HELP = ("where models train and predict: auto (this process's GPU when there is one, else the CPU), cpu, "
               "cuda or cuda:K (default: auto); under torchrun every process takes its share of each batch")


class VersionAction(argparse.Action):
    """`--version`: the package's version and the checkout's commit (what a results.json records), loaded only when asked."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from importlib.metadata import PackageNotFoundError, version

        from harness.speed.env import git_commit
        try:
            number = version("kd-harness")
        except PackageNotFoundError:
            number = "not installed"
        print(f"kd-harness {number}, commit {git_commit(Path(__file__).resolve().parent.parent)}")
        parser.exit()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness", description="Distil fine-tuned transformer teachers into "
                                "BiLSTM students, score and time them, and report beside Tang et al. (2019).",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action=VersionAction, nargs=0, help="print the harness's version and git commit, then exit")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="teacher -> augment -> label -> students -> evaluate -> measure -> report")
    run.add_argument("--suite", default="glue", help="suite name in harness/core/suites/ or a YAML path (default: glue)")
    run.add_argument("--preset", help="named overrides from the suite: smoke (SST-2 + STS-B slices, about 6 min on 2 cores), "
                     "quick (all six GLUE tasks with data, about 1.5 h on 2 cores; three student seeds on the four small "
                     "tasks), zoo (quick's teachers with every student "
                     "family), full (the paper's protocol, hours); README, Presets")
    run.add_argument("--tasks", help="comma-separated tasks, overriding the suite's (e.g. sst2,stsb); without it every "
                     "task of the suite that has training data runs and the others are named as not run; a task named "
                     "here without data is an error")
    run.add_argument("--students", help="comma-separated students, overriding the suite's")
    run.add_argument("--seeds", help="comma-separated student seeds, e.g. 13,14,15: every student trains once per seed "
                     "on the same teacher and transfer set; scores are means with their sd, and paired tests pool the "
                     "seeds (--set teacher.per_seed=true fine-tunes a teacher per seed too; default: the suite's "
                     "`seed` alone)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config field, e.g. student.hidden=300 (repeatable)")
    run.add_argument("--data-dir", help=DATA_HELP)
    run.add_argument("--out", type=Path, help="output folder (default: runs/<suite>-<preset>)")
    run.add_argument("--cache-dir", type=Path, default=Path("runs/cache"),
                     help="stage cache shared by runs (default: runs/cache)")
    run.add_argument("--device", default="auto", help=DEVICE_HELP)
    run.add_argument("--plugins", help=PLUGINS_HELP)
    run.add_argument("--dry-run", action="store_true", help="compute and write nothing: list each stage the run "
                     "would meet, with its cache key and whether it would come from the cache, resume a killed run's "
                     "work or be computed (and how long a cached one took), after checking the settings and reading "
                     "the data")

    ls = sub.add_parser("ls", help="list registered tasks, teachers, students or references (with where each came "
                        "from), or the shipped suites")
    ls.add_argument("what", choices=["tasks", "teachers", "students", "references", "suites"])
    ls.add_argument("--plugins", help=PLUGINS_HELP)

    pr = sub.add_parser("predict", help="score a GLUE-style TSV with a trained model folder",
                        description="Predict every row of a GLUE-style file. When the file has labels, the last line "
                        "printed is JSON with the task's metrics, e.g. {\"n\": 1500, \"pearson\": ..., \"spearman\": ...} "
                        "for STS-B or {\"n\": 1043, \"mcc\": ...} for CoLA.")
    pr.add_argument("--model", type=Path, required=True, help="a folder under <run>/models/<task>/<model>")
    given = pr.add_mutually_exclusive_group(required=True)
    given.add_argument("--input", type=Path, help="TSV with the task's text columns (and label, to score)")
    given.add_argument("--text", action="append", help="a text to predict instead of a file, repeatable; a pair "
                       "task's two texts joined by a tab ($'first\\tsecond'); prints one JSON line each: the "
                       "prediction (label name, class index or score) and the model's outputs")
    pr.add_argument("--device", default="auto", help=DEVICE_HELP)
    pr.add_argument("--plugins", help=PLUGINS_HELP)
    pr.add_argument("--output", type=Path, help="write GLUE's submission format here: index<TAB>prediction, a score "
                    "for STS-B, label names for MNLI, QNLI and RTE, class indices otherwise")
    me = sub.add_parser("measure", help="time one model on its own: a trained model folder or a reference name",
                        description="Parameters and latency of one model, printed as one JSON line last. Batch-1 "
                        "timing runs over the task's dev sentences, the offline regime over its training sentences "
                        "(batch 512; projected to the whole set when only part is timed).")
    me.add_argument("--model", required=True,
                    help="a folder under <run>/models/<task>/<model>, or a reference name (see `ls references`)")
    me.add_argument("--backend", choices=["torch", "onnx", "onnx-int8"], default="torch",
                    help="PyTorch eager, or ONNX Runtime (exported into the model folder on first use; int8: students)")
    me.add_argument("--regime", choices=["interactive", "offline"], default="interactive",
                    help="interactive: batch 1, one sentence per call; offline: batches of 512 (the paper's)")
    me.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    me.add_argument("--threads", type=int, help="intra-op threads (default: 1 for interactive, as in `run`; "
                    "all usable cores for offline)")
    me.add_argument("--n", type=int, help="sentences to time (default: 200 batch-1; offline: all for students, "
                    "2,048 for a teacher, 512 for references)")
    me.add_argument("--data-dir", help=DATA_HELP)
    me.add_argument("--plugins", help=PLUGINS_HELP)

    ca = sub.add_parser("cache", help="what the stage cache holds and which runs use it; check it; remove what cannot be "
                        "or will not be reused",
                        description="ls: every entry with its stage, size, when it was written and which runs use it "
                        "(their results.json; by default the runs beside the cache folder, e.g. runs/*), then each "
                        "stage's size. verify: every entry is checked against its manifest (each file's size and "
                        "sha256); damaged entries are listed with the file at fault, and the exit status is 1 if there "
                        "are any. prune: removes damaged entries, unfinished `.partial` work folders and other "
                        "leftovers; with --keep RUN ..., also every entry none of those runs uses. Do not prune while a "
                        "run uses the cache: its work folder would go, and its entries too under --keep. A run discards "
                        "a damaged entry by itself when it needs it; these commands look after a cache as a whole.")
    ca.add_argument("action", choices=["ls", "verify", "prune"])
    ca.add_argument("--cache-dir", type=Path, default=Path("runs/cache"), help="the cache (default: runs/cache)")
    ca.add_argument("--runs", type=Path, nargs="+", metavar="RUN", help="ls: the run folders whose use of each entry "
                    "to show (default: every run folder beside the cache folder)")
    ca.add_argument("--keep", type=Path, nargs="+", metavar="RUN", help="prune: also remove every committed entry "
                    "that none of these run folders uses (their results.json names the entries they used)")

    ex = sub.add_parser("export-transfer", help="write a run's labelled transfer set (Parquet + metadata) for other runs",
                        description="Write one task's transfer set of a finished run into the new folder OUT: "
                        "transfer.parquet (text columns, gold label or null, synthetic, the teacher's logits or score), "
                        "teacher_vectors.parquet (the teacher's static word vectors, for students with embedding: "
                        "teacher) and metadata.json (teacher and its scores, augmentation, cache keys, row counts, "
                        "sha256). Another run trains students from it with --set transfer.source=OUT, running no "
                        "teacher; datasets.load_dataset('parquet', data_files='OUT/transfer.parquet') reads it too.")
    ex.add_argument("run", type=Path, help="a run folder written by `harness run`")
    ex.add_argument("out", type=Path, help="the folder to write (must not exist)")
    ex.add_argument("--task", help="the task to export (default: the run's only task)")
    ex.add_argument("--cache-dir", type=Path, default=Path("runs/cache"),
                    help="the stage cache the run used (default: runs/cache)")
    ex.add_argument("--plugins", help=PLUGINS_HELP)

    rep = sub.add_parser("report", help="re-render report.md and plot.png of a run from its results.json",
                         description="Writes report.md, plot.png and (with several students per task) frontier.png "
                         "again from the run's results.json alone: a pure function of it, so a report made by an "
                         "older version is rendered the current way with the same numbers.")
    rep.add_argument("run", type=Path, help="a run folder written by `harness run`")
    rep.add_argument("--disagreements", type=int, metavar="N",
                     help="also list, per task and student, the N dev examples where it and the teacher disagree most "
                     "(from the run's per-example predictions), into disagreements.md")

    st = sub.add_parser("status", help="where a run (running or not) has got: its stage, rows done of total, an ETA",
                        description="Reads RUN_DIR/status.json, which `harness run` keeps up to date (every few seconds) "
                        "while it runs: the task and stage, the stage's progress (done / total, rate, ETA), the stages "
                        "before it, and whether the run's process is still alive. Exit status 0, or 2 when the "
                        "folder has no status file.")
    st.add_argument("run", type=Path, help="the --out folder of a `harness run`")

    cmp = sub.add_parser("compare", help="shared (task, model) scores of several runs side by side, with deltas",
                         description="Markdown: every (task, model, score) row the runs share (dev scores, ONNX and "
                         "int8 scores, batch-1 latency, in-run speed ratios, GLUE averages) with each run's delta from "
                         "the first, and an interval where both runs kept per-example predictions; then the rows not "
                         "in every run; then how the runs differ (commits, machines, and per task the data sizes, "
                         "checkpoint choice and settings that are not the same).")
    cmp.add_argument("runs", type=Path, nargs="+", help="run folders (or their results.json); deltas are against the first")
    cmp.add_argument("--labels", help="comma-separated column names for the runs (default: folder names)")

    chk = sub.add_parser("check", help="compare a run with a committed baseline: exit 1 if accuracy or an in-run speed "
                         "ratio regressed beyond the baseline's tolerances",
                         description="Accuracy per (task, model, score) may fall by at most the baseline's tolerance "
                         "(points); speed is compared as ratios measured inside the run (e.g. a student's speed-up over "
                         "the teacher), which may not fall below the baseline's ratio times its tolerance factor. "
                         "Exit status: 0 pass, 1 regressed, 2 bad input.")
    chk.add_argument("run", type=Path, help="a run folder written by `harness run` (or its results.json)")
    chk.add_argument("--baseline", type=Path, required=True, help="the baseline JSON, e.g. benchmarks/baseline.json")
    chk.add_argument("--update", action="store_true",
                     help="write the baseline from this run instead (keeping the file's tolerances), then exit 0")
    return p


def cmd_check(args: argparse.Namespace) -> int:
    from harness.results.check import check, update_baseline

    if args.update:
        print(update_baseline(args.run, args.baseline))
        return 0
    text, regressed = check(args.run, args.baseline)
    print(text)
    return 1 if regressed else 0


def cmd_cache(args: argparse.Namespace) -> int:
    from harness.engine.cache import Store
    from harness.engine.cache_admin import ls, verify_or_prune

    if not args.cache_dir.is_dir():
        raise HarnessError(f"--cache-dir {args.cache_dir}: no such folder")
    for option, action in (("runs", "ls"), ("keep", "prune")):
        if getattr(args, option) is not None and args.action != action:
            raise HarnessError(f"--{option} goes with `cache {action}`, not `cache {args.action}`")
    if args.action == "ls":
        print(ls(Store(args.cache_dir), args.runs))
        return 0
    text, damaged = verify_or_prune(Store(args.cache_dir), args.action == "prune", args.keep)
    print(text)
    return 1 if args.action == "verify" and damaged else 0


def cmd_compare(args: argparse.Namespace) -> None:
    from harness import api

    print(api.compare(args.runs, args.labels.split(",") if args.labels else None))


def cmd_measure(args: argparse.Namespace) -> None:
    from harness import api

    print(json.dumps(api.measure(args.model, args.backend, args.regime, args.device, args.n, args.threads, args.data_dir)))


def cmd_report(args: argparse.Namespace) -> None:
    from harness import api

    print(f"report: {api.report(args.run)}")
    if args.disagreements is not None:
        from harness.results import disagreements
        from harness.results.compare import load_results

        path = disagreements.write(args.run, load_results(args.run), args.disagreements)
        print(path.read_text())
        print(f"disagreements: {path}")


def cmd_status(args: argparse.Namespace) -> None:
    from harness.core import progress

    try:
        print(progress.describe(args.run))
    except FileNotFoundError:
        raise HarnessError(f"{args.run}: no {progress.FILE} (not a run folder, a run from before status files, "
                           "or a run that failed: it removes what it wrote)") from None
    except ValueError as e:
        raise HarnessError(str(e)) from None


def cmd_run(args: argparse.Namespace) -> None:
    from harness import api
    from harness.core.config import parse_set

    out = args.out or Path("runs") / f"{Path(args.suite).stem}-{args.preset or 'default'}"
    if args.dry_run:
        from harness.results.plan_table import render

        plan = api.plan(args.suite, args.preset, args.tasks, args.students, parse_set(args.set), args.cache_dir,
                        args.data_dir, args.device, plugin_list(args), args.seeds)
        print(render(plan, args.cache_dir, out))
        return
    results = api.run(args.suite, args.preset, args.tasks, args.students, parse_set(args.set), out, args.cache_dir,
                      args.data_dir, args.device, plugin_list(args), args.seeds)
    print(f"report: {out / 'report.md'}  results: {out / 'results.json'}  ({results['wall_seconds']:.0f} s)")


def cmd_export_transfer(args: argparse.Namespace) -> None:
    from harness.engine.transfer import export

    meta = export(args.run, args.task, args.out, args.cache_dir)
    print(f"{args.out}: {meta['rows']:,} rows of {meta['task']} ({meta['synthetic']:,} synthetic), teacher "
          f"{meta['teacher']['checkpoint']}; train from it with --set transfer.source={args.out}")


def cmd_ls(args: argparse.Namespace) -> None:
    import textwrap

    import yaml

    from harness import api
    from harness.core.config import SUITES_DIR

    if args.what == "suites":
        for path in sorted(SUITES_DIR.glob("*.yaml")):
            raw = yaml.safe_load(path.read_text()) or {}
            print(f"{path.stem}  presets: {', '.join(raw.get('presets') or {}) or 'none'} (README, Presets)")
            print(textwrap.indent(textwrap.fill(" ".join(str(raw.get("description", "")).split()), 100), "  "))
        return
    entries = api.ls(args.what)
    width = max(map(len, entries), default=0)
    print("\n".join(f"{name:<{width}}  from {origin}" for name, origin in entries.items()))


def cmd_predict(args: argparse.Namespace) -> None:
    from harness import api

    if args.text:
        if args.output:
            raise HarnessError("--output writes a file's predictions: use it with --input, not --text")
        for row in api.predict_texts(args.model, args.text, args.device):
            print(json.dumps(row))
        return
    scores = api.predict(args.model, args.input, args.output, args.device)
    if args.output:
        print(f"predictions: {args.output}")
    if scores is not None:
        print(json.dumps(scores))


def plugin_list(args: argparse.Namespace) -> list[str]:
    """The modules named with --plugins."""
    return [m.strip() for m in (getattr(args, "plugins", None) or "").split(",") if m.strip()]


NO_PLUGINS = ("compare", "check", "report", "cache", "status")  # results.json or cache files alone: no models to load


class Terminated(KeyboardInterrupt):
    """SIGTERM, the signal that `timeout`, systemd, Slurm and Ray send, read as an interrupt: the run removes what it
    left unfinished, as after Ctrl-C, and ends with one line saying where it stopped (exit 143)."""


def on_sigterm(signum: int, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM does not break into the cleanup the first started
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    before = signal.signal(signal.SIGTERM, on_sigterm) if threading.current_thread() is threading.main_thread() else None
    try:
        if args.command not in NO_PLUGINS:
            from harness.api import start

            start(plugin_list(args), "--plugins")
        status = {"run": cmd_run, "ls": cmd_ls, "predict": cmd_predict, "compare": cmd_compare, "report": cmd_report,
                  "measure": cmd_measure, "check": cmd_check, "cache": cmd_cache, "status": cmd_status,
                  "export-transfer": cmd_export_transfer}[args.command](args)
    except DiskFault as e:
        say_error(str(e))
        return 3
    except HarnessError as e:
        say_error(str(e))
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (Terminated): the same cleanup and one line
        from harness.core import progress

        at = progress.where()
        say_error(f"{'terminated (SIGTERM)' if isinstance(e, Terminated) else 'interrupted'}{' ' + at if at else ''}: "
                  "rerun the same command to resume from the last finished step", "")
        return 128 + signal.SIGTERM if isinstance(e, Terminated) else 130
    except Exception as e:
        fault = describe(e)  # a full or read-only filesystem met outside --out and --cache-dir (e.g. /tmp)
        if fault:
            say_error(fault)
            return 3
        if not distributed():
            raise
        say_error(f"{type(e).__name__}: {e}\n{traceback.format_exc()}")  # a rank's traceback would go to /dev/null
        return 1
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)
        if distributed():
            sys.modules["harness.engine.device"].teardown()
    return status or 0


def distributed() -> bool:
    """Whether this process joined a torchrun process group (harness.engine.device is loaded only by the
    commands that train or predict; the others start without torch)."""
    dev = sys.modules.get("harness.engine.device")
    return dev is not None and dev.current().distributed


def say_error(message: str, prefix: str = "error: ") -> None:
    """One line on stderr. Under torchrun it names the rank; before the processes join, every rank has
    the same inputs and the same error, so rank 0 alone says it."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and rank and not distributed():
        return
    where = f"rank {rank}: " if world > 1 else ""
    print(f"{prefix}{where}{message}", file=sys.stderr if rank == 0 else sys.__stderr__, flush=True)
