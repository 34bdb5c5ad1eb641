"""An exported transfer set re-cut for a selection split of whole trees (`--set selection.unit=tree`), without
fine-tuning or labelling again:

    .venv/bin/python scripts/tree_transfer.py EXPORT OUT [--data-dir DIR]

SST-2's training file holds every phrase of its sentences' trees, so the default selection split (single
examples) is mostly phrases of sentences still trained on. `selection.unit=tree` holds out whole sentences with
their phrases instead; a transfer set exported under the default split trains on those, so a run with the tree
split refuses it. This writes OUT: EXPORT's rows less every original the tree split holds out and every
synthetic row made from one. It rebuilds EXPORT's training rows from the data (its selection fraction and limit,
its count of originals), makes its augmentation again with each row's original (`augment.traced`), and refuses
an export whose rows differ from those. The teacher is not made again: it was fine-tuned and chosen with the
example split, so it trained on most of the examples the tree split holds out; metadata.json's `derived` says
how many, and runs trained from OUT carry it in their results. Then:

    .venv/bin/python -m harness run --suite glue --tasks sst2 --set transfer.source=OUT --set selection.unit=tree ...
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.core.config import AugmentConfig  # noqa: E402
from harness.core.errors import HarnessError  # noqa: E402
from harness.core.registry import TASKS  # noqa: E402
from harness.data import augment  # noqa: E402
from harness.data.split import TREE_RULE, selection_split  # noqa: E402
from harness.data.tasks import load_task, nltk_roots  # noqa: E402
from harness.engine import transfer  # noqa: E402
from harness.engine.manifest import sha256  # noqa: E402
from harness.engine.stages import sample  # noqa: E402


def recut(export: Path, out: Path, data_dir: str | None) -> dict:
    """Write OUT (see the module docstring); returns its metadata. Nothing is left at `out` unless every file was
    written.

    Raises:
        HarnessError: `out` exists, EXPORT was not made with the example split, or its rows are not the
            augmentation of the data's training rows.
    """
    if out.exists():
        raise HarnessError(f"{out} already exists; name a new folder")
    if not (export / transfer.META).is_file():
        raise HarnessError(f"{export}: no {transfer.META}; expected a folder written by `harness export-transfer`")
    meta = transfer.read_metadata(export, TASKS.get(json.loads((export / transfer.META).read_text())["task"]))
    task = load_task(meta["task"], data_dir)
    sel = meta.get("selection") or {}
    if meta.get("select_on") != "selection" or sel.get("unit", "example") != "example":
        raise HarnessError(f"{export}: exported with select_on={meta.get('select_on')}, selection unit "
                           f"{sel.get('unit', 'example')}; this re-cuts one made with the example split")
    full = task["train"]
    _, train = selection_split(full, sel["fraction"], sel["limit"])
    held, _ = selection_split(full, sel["fraction"], sel["limit"], unit="tree")
    if len(train) < meta["originals"]:
        raise HarnessError(f"{export}: {meta['originals']} originals, but the data's training file less the "
                           f"selection split holds {len(train)} (other data)")
    train = train.head(meta["originals"])  # a run's train_limit keeps the first rows; checked below
    settings = AugmentConfig(**meta["augment"])
    augment.use_nltk_data(nltk_roots(data_dir))
    rows = augment.traced(train.texts, train.labels, settings, meta["seed"],
                          augment_ids=sample(len(train), settings.source_limit, meta["seed"]))
    table = pq.read_table(export / transfer.ROWS)
    columns = [table.column(c).to_pylist() for c in meta["text_columns"]]
    origin = np.empty(table.num_rows, dtype=np.int64)
    n = 0
    for n, (texts, _, i) in enumerate(rows, 1):
        if n > table.num_rows or texts != tuple(col[n - 1] for col in columns):
            raise HarnessError(f"{export}: row {n - 1} is not the augmentation of the data's training rows made again "
                               "(other data, or other augmentation code)")
        origin[n - 1] = i
    if n != table.num_rows:
        raise HarnessError(f"{export}: {table.num_rows} rows, the augmentation made again gives {n}")
    held_texts = set(held.texts)
    drop = np.array([t in held_texts for t in train.texts])
    keep = ~drop[origin]
    trained = set(train.texts)
    was_trained = sum(t in trained for t in held.texts)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        pq.write_table(table.filter(pa.array(keep)), tmp / transfer.ROWS)
        shutil.copyfile(export / transfer.VECTORS, tmp / transfer.VECTORS)
        originals = int(keep[: meta["originals"]].sum())
        new = {**meta, "rows": int(keep.sum()), "originals": originals, "synthetic": int(keep.sum()) - originals,
               "selection": {"examples": len(held), "fraction": sel["fraction"], "limit": sel["limit"], "unit": "tree",
                             "rule": TREE_RULE},
               "derived": {"from": str(export), "rows_sha256": meta["files"][transfer.ROWS]["sha256"],
                           "left_out": {"originals": int(drop.sum()), "synthetic": int((~keep).sum() - drop.sum())},
                           "teacher": f"fine-tuned and chosen with the example selection split: it trained on {was_trained:,} "
                                      f"of the {len(held):,} examples the tree split holds out",
                           "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
               "files": {name: {"bytes": (tmp / name).stat().st_size, "sha256": sha256(tmp / name)}
                         for name in (transfer.ROWS, transfer.VECTORS)}}
        (tmp / transfer.META).write_text(json.dumps(new, indent=2) + "\n")
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return new


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path, help="a folder written by `harness export-transfer` (example split)")
    parser.add_argument("out", type=Path, help="the new folder")
    parser.add_argument("--data-dir", help="the GLUE data folder the export's run read (default: the harness's)")
    args = parser.parse_args(argv)
    try:
        meta = recut(args.export, args.out, args.data_dir)
    except HarnessError as e:
        sys.exit(f"error: {e}")
    d = meta["derived"]
    print(f"{args.out}: {meta['rows']:,} rows ({meta['originals']:,} originals); left out {d['left_out']['originals']:,} "
          f"originals and {d['left_out']['synthetic']:,} synthetic rows; selection split {meta['selection']['examples']:,} "
          f"examples (whole trees); teacher {d['teacher']}")


if __name__ == "__main__":
    main()
