"""One process or two under torchrun, measured on this machine: labelling rows/s and the smoke run's wall time.

    .venv/bin/python benchmarks/scale_out.py [--out runs/scale-out] [--nproc 2]

1. The smoke preset from an empty cache, in one process and under `torchrun --nproc_per_node N`
   (each process its share of the cores): wall seconds both ways, the dev scores of both, and the
   largest difference between their teacher logits (the label cache entries, whose keys are equal).
2. Labelling alone: the one-process run's teacher and transfer sets are copied into two fresh caches,
   and the run is repeated with 1 process x 1 thread and with N processes x 1 thread; the label
   stages' own rows/s (rows / the stage's seconds, from results.json) are compared.
Writes `scale_out.json` and `scale_out.md` into --out. It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ["run", "--preset", "smoke", "--device", "cpu"]


def harness(nproc: int, args: list[str], log: Path) -> float:
    """Run `python -m harness ARGS` (under torchrun when nproc > 1); wall seconds."""
    launch = [sys.executable, "-m", "harness"] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "harness"]
    start = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run([*launch, *args], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}): {' '.join(args)}; see {log}")
    return round(time.perf_counter() - start, 1)


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def label_rates(run: dict) -> dict[str, float]:
    return {task: round(t["stages"]["label"]["rows"] / t["stages"]["label"]["seconds"], 1)
            for task, t in run["tasks"].items() if not t["stages"]["label"]["cached"]}


def dev_scores(run: dict) -> dict[str, dict]:
    return {task: {m: e["scores"]["dev"] for m, e in t["models"].items() if "dev" in e["scores"]}  # references: none
            for task, t in run["tasks"].items()}


def logit_deltas(run: dict, one: Path, other: Path) -> dict[str, float]:
    """Per task of `run`, the largest difference between its teacher logits in two caches (same key in both)."""
    entries = {task: t["stages"]["label"]["key"] for task, t in run["tasks"].items()}
    return {task: float(np.abs(np.load(one / "label" / key / "logits.npy") - np.load(other / "label" / key / "logits.npy")).max())
            for task, key in entries.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "scale-out")
    p.add_argument("--nproc", type=int, default=2)
    args = p.parse_args()
    out, n = args.out.resolve(), args.nproc
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    wall = {}
    for procs in (1, n):
        wall[procs] = harness(procs, [*SMOKE, "--out", str(out / f"smoke-{procs}"), "--cache-dir", str(out / f"cache-{procs}")],
                              out / f"smoke-{procs}.log")
        print(f"smoke, {procs} process(es): {wall[procs]} s", flush=True)
    rates = {}
    for procs in (1, n):
        cache = out / f"label-cache-{procs}"
        for stage in ("teacher", "augment"):
            shutil.copytree(out / "cache-1" / stage, cache / stage)
        sets = ["--set", "measure.threads=1", "--set", "measure.enabled=false"]
        label_out = out / f"label-{procs}"
        harness(procs, [*SMOKE, *sets, "--out", str(label_out), "--cache-dir", str(cache)], out / f"label-{procs}.log")
        rates[procs] = label_rates(results(label_out))
        print(f"labelling, {procs} process(es) x 1 thread: {rates[procs]} rows/s", flush=True)
    env = results(out / "smoke-1")["environment"]
    summary = {"cpu": env.get("cpu"), "usable_cores": len(os.sched_getaffinity(0)), "processes": n,
               "smoke_wall_seconds": wall, "label_rows_per_second": rates,
               "label_speedup": {t: round(rates[n][t] / rates[1][t], 2) for t in rates[1]},
               "dev_scores": {procs: dev_scores(results(out / f"smoke-{procs}")) for procs in (1, n)},
               "teacher_logit_max_delta": logit_deltas(results(out / "smoke-1"), out / "cache-1", out / f"cache-{n}")}
    (out / "scale_out.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"# One process or {n} (torchrun, gloo), measured on {summary['cpu']} ({summary['usable_cores']} cores)", "",
             "| | 1 process | " + f"{n} processes | ratio |", "|---|---|---|---|",
             f"| smoke run, wall seconds (empty cache) | {wall[1]} | {wall[n]} | {wall[1] / wall[n]:.2f}x |"]
    lines += [f"| labelling {t}, rows/s (x 1 thread each) | {rates[1][t]} | {rates[n][t]} | {summary['label_speedup'][t]}x |"
              for t in rates[1]]
    lines += ["", f"Teacher logits over the transfer set, largest difference between 1 and {n} processes:", ""]
    lines += [f"- {task}: {delta:.2e}" for task, delta in summary["teacher_logit_max_delta"].items()]
    lines += ["", "Dev scores (1 process vs " + f"{n}):", ""]
    for task, models in summary["dev_scores"][1].items():
        for model, score in models.items():
            lines.append(f"- {task} {model}: {score} vs {summary['dev_scores'][n][task][model]}")
    (out / "scale_out.md").write_text("\n".join(lines) + "\n")
    print((out / "scale_out.md").read_text())


if __name__ == "__main__":
    main()
