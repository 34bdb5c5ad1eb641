"""A run's selection accuracy split in two: the held-out examples that lie word for word inside a training
example, and the others.

SST-2's training file holds every labelled phrase of its trees, so 3,028 of the 3,367 examples its selection
split holds out are phrases of sentences still trained on (`Split.inside`); dev's 872 whole sentences are not.
Early stopping and checkpoints are chosen on the whole selection split. This prints, for every model and seed
of a run that kept its predictions, the accuracy on each part, beside dev's:

    .venv/bin/python scripts/selection_phrases.py RUN [RUN ...] [--task sst2] [--data-dir DIR]

It rebuilds the run's training rows from the data (the run's selection fraction, limit, unit and `train_limit`) and
refuses a run whose kept selection examples are not those rows' complement. Classification tasks with one text.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.data.split import selection_split  # noqa: E402
from harness.data.tasks import load_task  # noqa: E402
from harness.results import samples  # noqa: E402


def parts(run: Path, task: str, data_dir: str | None) -> pd.DataFrame:
    results = json.loads((run / "results.json").read_text())
    data, config = results["tasks"][task]["data"], results["config"]
    selection, train = selection_split(load_task(task, data_dir)["train"], data["selection"]["fraction"],
                                       data["selection"]["limit"], config.get("selection", {}).get("unit", "example"))
    train = train.head(config.get("train_limit") or 0)
    folder = samples.task_folder(run, task)
    examples = samples.read(folder, "examples")
    kept = examples[examples["split"] == "selection"].sort_values("example")["sentence"].tolist()
    if kept != [t[0] for t in selection.texts]:
        raise SystemExit(f"{run}: its kept selection examples are not the ones rebuilt from the data (another data dir?)")
    inside = np.array(selection.inside(train))
    labels, dev_labels = samples.labels_of(examples, "selection"), samples.labels_of(examples, "dev")
    rows = []
    for path in sorted(folder.glob("*.parquet")):
        if path.stem == "examples":
            continue
        frame = samples.read(folder, path.stem)
        right = samples.seed_columns(frame, "selection") == labels[:, None]
        dev_right = samples.seed_columns(frame, "dev") == dev_labels[:, None]
        for k, seed in enumerate(sorted(frame["seed"].unique())):
            rows.append({"run": run.name, "model": path.stem, "seed": seed, "selection": 100 * right[:, k].mean(),
                         f"inside a training example ({inside.sum():,})": 100 * right[inside, k].mean(),
                         f"not inside ({(~inside).sum():,})": 100 * right[~inside, k].mean(),
                         f"dev ({len(dev_labels):,})": 100 * dev_right[:, k].mean()})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (with results.json and predictions/)")
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--data-dir", default=None, help="the data the runs read (default: the harness's)")
    args = parser.parse_args(argv)
    table = pd.concat([parts(run, args.task, args.data_dir) for run in args.runs])
    print(table.to_markdown(index=False, floatfmt=".2f"))


if __name__ == "__main__":
    main()
