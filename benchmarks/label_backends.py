"""Labelling backends measured on this machine: rows/s, distance from the PyTorch teacher, and the students.

    .venv/bin/python benchmarks/label_backends.py --from-cache runs/scale-out/cache-1 [--out runs/label-backends]

Takes the fine-tuned teacher and transfer sets of a finished run's cache (`--from-cache`, e.g. the
smoke run of benchmarks/scale_out.py), then runs the same command once per `teacher.label_backend`
on one shared copy: each labels the transfer set anew (its own label key) and trains its own students.
`--backends` lists them, each `backend` or `backend@rows` (rows per labelling call; without it the
default, 32 on a CPU); the first is what the others are compared with (default: torch@256, PyTorch as
it labelled before the default became 32 rows per call, then torch, onnx, onnx-int8 at the default).
Per task and backend: label rows/s (rows / the seconds of labelling itself, without the ONNX export and
the cost check, which the stage's total includes), the measured cost (max |logit delta|, argmax
agreement with PyTorch fp32 on the check sample) and the students' dev scores. Writes
`label_backends.json` and `.md` into --out. It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from harness.engine.label_backends import BACKENDS

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--from-cache", type=Path, required=True, help="a cache holding teacher/ and augment/ entries")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "label-backends")
    p.add_argument("--args", default="run --preset smoke --set measure.enabled=false",
                   help="the harness command whose teacher and transfer sets the cache holds")
    p.add_argument("--backends", default=f"torch@256,{','.join(BACKENDS)}",
                   help="comma-separated backend[@rows per call]; the first is the baseline")
    args = p.parse_args()
    out = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    for stage in ("teacher", "augment"):
        shutil.copytree(args.from_cache / stage, out / "cache" / stage)
    rows = {}
    variants = args.backends.split(",")
    for backend in variants:
        name, _, batch = backend.partition("@")
        command = [sys.executable, "-m", "harness", *args.args.split(), "--set", f"teacher.label_backend={name}",
                   *(["--set", f"teacher.label_batch_size={batch}"] if batch else []),
                   "--out", str(out / backend), "--cache-dir", str(out / "cache")]
        with open(out / f"{backend}.log", "w") as log:
            if subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode:
                sys.exit(f"{backend} failed; see {out / f'{backend}.log'}")
        results = json.loads((out / backend / "results.json").read_text())
        for task, t in results["tasks"].items():
            label = t["stages"]["label"]
            rows[(task, backend)] = {
                "rows_per_second": round(label["rows"] / label["label_seconds"], 1),  # labelling alone
                "stage_seconds": label["seconds"], "threads": results["environment"]["torch_threads"],
                "rows_per_call": label.get("batch"),
                **label.get("backend_check", {}),
                "students": {m: e["scores"]["dev"] for m, e in t["models"].items() if m != "teacher" and "dev" in e["scores"]}}
        print(backend, {k: v for k, v in rows.items() if k[1] == backend}, flush=True)
    table = {f"{task}/{backend}": v for (task, backend), v in rows.items()}
    (out / "label_backends.json").write_text(json.dumps(table, indent=2) + "\n")
    lines = [f"| task | backend | rows per call | rows/s | vs {variants[0]} | max abs logit delta | argmax agreement % | "
             "students' dev |", "|---|---|---|---|---|---|---|---|"]
    for (task, backend), v in rows.items():
        speedup = v["rows_per_second"] / rows[(task, variants[0])]["rows_per_second"]
        students = "; ".join(f"{m} {', '.join(f'{k} {x:.2f}' for k, x in s.items())}" for m, s in v["students"].items())
        lines.append(f"| {task} | {backend} | {v['rows_per_call'] or ''} | {v['rows_per_second']} | {speedup:.2f}x | "
                     f"{v.get('max_abs_logit_delta', 0):.3g} | {v.get('argmax_agreement', '')} | {students} |")
    (out / "label_backends.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
