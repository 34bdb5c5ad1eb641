"""`harness cache`: look after a stage cache as a whole. What is in it, how big, which runs use each entry
(`ls`); which entries are damaged (`verify`, every file's sha256 against its manifest); and removing what
no run can reuse, or what none of the runs to keep uses (`prune`)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd

from harness.core.errors import HarnessError
from harness.engine.cache import PARTIAL, Store, folder_bytes, survey
from harness.engine.stages import VERSIONS


def run_keys(runs: list[Path]) -> dict[str, set[str]]:
    """The cache keys each run's results.json records for its stages (teacher, transfer set, labels,
    students), by run folder.

    Raises:
        HarnessError: a folder without a results.json, or one that is not a run's.
    """
    used = {}
    for run in runs:
        path = run / "results.json"
        try:
            tasks = json.loads(path.read_text())["tasks"]
            used[str(run)] = {meta["key"] for task in tasks.values() if task for meta in task["stages"].values()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise HarnessError(f"{path}: not a finished run's results ({type(e).__name__}: {e}); a run folder written by "
                               "`harness run` holds one") from None
    return used


def runs_beside(cache_dir: Path) -> list[Path]:
    """The finished runs in the cache folder's parent (`runs/` for the default `runs/cache`)."""
    return sorted(p.parent for p in cache_dir.resolve().parent.glob("*/results.json"))


def listing(store: Store, used: dict[str, set[str]]) -> pd.DataFrame:
    """One row per folder of the cache: stage, key, state (committed, unfinished, leftover; not hashed: that is
    `verify`), MB, when it was last written (UTC) and the runs among `used` that use it."""
    rows = []
    for path in store.entries():
        key, _, suffix = path.name.partition(".")
        state = "committed" if not suffix else "unfinished" if path.name.endswith(PARTIAL) else "leftover"
        made = path / "meta.json" if (path / "meta.json").is_file() else path
        rows.append({"stage": path.parent.name, "key": path.name, "state": state, "MB": folder_bytes(path) / 1e6,
                     "written (UTC)": time.strftime("%Y-%m-%d %H:%M", time.gmtime(made.stat().st_mtime)),
                     "used by": ", ".join(Path(run).name for run, keys in used.items() if key in keys and not suffix)})
    order = {stage: k for k, stage in enumerate(VERSIONS)}  # the pipeline's order: teacher, augment, label, ...
    rows.sort(key=lambda row: (order.get(row["stage"], len(order)), row["stage"], row["written (UTC)"], row["key"]))
    return pd.DataFrame(rows, columns=["stage", "key", "state", "MB", "written (UTC)", "used by"])


def ls(store: Store, runs: list[Path] | None) -> str:
    """The listing as markdown, then the size of each stage and of the whole cache. `runs` named must be runs; of
    those found beside the cache (runs=None), a folder whose results.json is not a run's is left out and named."""
    used, skipped = {}, []
    for run in runs_beside(store.root) if runs is None else runs:
        try:
            used.update(run_keys([run]))
        except HarnessError:
            if runs is not None:
                raise
            skipped.append(str(run))
    table = listing(store, used)
    if table.empty:
        return f"{store.root}: empty"
    sizes = table.groupby("stage", sort=False)["MB"].agg(["count", "sum"])
    unused = table[(table["state"] == "committed") & (table["used by"] == "")]
    shown = table.assign(MB=table["MB"].map(lambda mb: f"{mb:,.1f}"))
    return "\n".join([
        shown.to_markdown(index=False, disable_numparse=True), "",
        f"{store.root}: {len(table)} folders, {table['MB'].sum():,.1f} MB ("
        + ", ".join(f"{stage} {int(row['count'])}: {row['sum']:,.1f} MB" for stage, row in sizes.iterrows()) + ").",
        f"Runs read for `used by`: {', '.join(used) or 'none'}"
        + (f" (left out, their results.json is not a run's: {', '.join(skipped)})" if skipped else "")
        + f". {len(unused)} committed entries "
        f"({unused['MB'].sum():,.1f} MB) are used by none of them: `cache prune --keep RUN ...` removes such entries."])


def verify_or_prune(store: Store, prune: bool, keep: list[Path] | None) -> tuple[str, bool]:
    """`verify` (prune False) or `prune`: the lines to print, and whether a damaged entry was found.

    Args:
        keep: prune also removes committed, intact entries that none of these runs uses (None: keep them all).
    """
    used = set().union(*run_keys(keep).values()) if keep is not None else None
    states = survey(store)
    if used is not None:
        states = [(path, "unused", "no run to keep uses it") if state == "ok" and path.name not in used else
                  (path, state, detail) for path, state, detail in states]
    kinds = ("ok", "damaged", "unfinished", "leftover") + (("unused",) if used is not None else ())
    counts = {kind: sum(1 for _, s, _ in states if s == kind) for kind in kinds}
    lines, freed = [], 0
    for path, state, detail in states:
        if state == "ok":
            continue
        if prune:
            freed += folder_bytes(path)
            shutil.rmtree(path)
        lines.append(f"{'removed ' if prune else ''}{state}: {path}: {detail}")
    removed = sum(n for kind, n in counts.items() if kind != "ok")
    lines.append(f"{store.root}: " + ", ".join(f"{n} {kind}" for kind, n in counts.items())
                 + (f"; removed {removed} ({freed / 1e6:.1f} MB)" if prune else ""))
    return "\n".join(lines), counts["damaged"] > 0
