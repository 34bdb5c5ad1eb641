"""Labelled transfer sets as files that outlive a run.

`harness export-transfer RUN_DIR --task T OUT` writes, into the folder OUT:
- `transfer.parquet`: the text column(s) (`text_a`, and `text_b` on pair tasks), `label` (the gold label of
  an original row, null on a synthetic one), `synthetic`, and the teacher's `logits` (a list of floats per
  row) or, on a regression task, its `score`. The originals come first, in the run's order.
- `teacher_vectors.parquet`: `word`, `vector`, `one_piece` for every word of the transfer set: the static
  word vectors that students with `embedding: teacher` start from, read off the teacher at export time.
- `metadata.json`: the task, the label count, row counts, the teacher (checkpoint, ensemble members, its
  scores in the run), augmentation and labelling settings, the cache keys, and each file's size and sha256.

`--set transfer.source=OUT` then trains a run's students from it: the folder is checked (its task and label
count against the run's, every file against its sha256) and unpacked into the stage cache; no teacher is
fine-tuned, loaded or run. `datasets.load_dataset("parquet", data_files="OUT/transfer.parquet")` reads it too.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from harness.core.errors import HarnessError
from harness.data import augment
from harness.data.tasks import Task
from harness.data.text import tokenize_many
from harness.engine import label
from harness.engine.cache import Store, write_json_atomic
from harness.engine.embeddings import teacher_static, vectors_meta
from harness.engine.manifest import sha256

FORMAT, VERSION = "kd-harness transfer set", 1
ROWS, VECTORS, META = "transfer.parquet", "teacher_vectors.parquet", "metadata.json"


def cache_entry(store: Store, stage: str, key: str, run_dir: Path) -> Path:
    """A run's committed, undamaged cache entry.

    Raises:
        HarnessError: it is missing or damaged, saying how to get it back.
    """
    problem = "not in the cache" if not store.has(stage, key) else store.problem(stage, key)
    if problem:
        raise HarnessError(f"{run_dir}: its {stage} stage ({key}) is {problem} under {store.root}: pass the --cache-dir "
                           "the run used, or rerun it with the same settings to recompute it")
    return store.path(stage, key)


def rows_table(table: pa.Table, logits: np.ndarray, regression: bool) -> pa.Table:
    """The exported rows: texts, gold label (null on synthetic rows), `synthetic`, and logits or score."""
    gold = table.column("label").to_numpy()
    synthetic = ~label.has_gold(gold)
    columns = {c: table.column(c) for c in label.text_columns(table)}
    columns["label"] = pa.array(gold, mask=synthetic)
    columns["synthetic"] = pa.array(synthetic)
    if regression:
        columns["score"] = pa.array(logits[:, 0])
    else:
        columns["logits"] = pa.FixedSizeListArray.from_arrays(pa.array(logits.reshape(-1)), logits.shape[1])
    return pa.table(columns)


def vectors_table(words: list[str], teacher) -> pa.Table:
    vectors, one_piece = teacher_static(words, teacher)
    return pa.table({"word": words, "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)),
                                                                                 vectors.shape[1]),
                     "one_piece": one_piece})


def export(run_dir: Path, task_name: str | None, out: Path, cache_dir: Path) -> dict:
    """Write a run's labelled transfer set for one task into the folder `out` (see the module docstring).
    Nothing is left at `out` unless every file was written.

    Raises:
        HarnessError: no results.json, no such task in the run, the run's cache entries missing or
            damaged, or `out` already there.
    """
    from harness.core.registry import TEACHERS
    from harness.engine.wordmodel import Vocab

    results_file = run_dir / "results.json"
    if not results_file.is_file():
        raise HarnessError(f"{run_dir}: no results.json; pass a run folder written by `harness run`")
    results = json.loads(results_file.read_text())
    tasks = list(results.get("tasks", {}))
    if task_name is None and len(tasks) == 1:
        task_name = tasks[0]
    if task_name not in tasks:
        raise HarnessError(f"{run_dir}: " + (f"no task {task_name!r} in this run" if task_name else "several tasks")
                           + f"; pass --task with one of: {', '.join(tasks)}")
    t = results["tasks"][task_name]
    stages = t["stages"]
    if "import" in stages:
        raise HarnessError(f"{run_dir}: task {task_name} trained on an imported transfer set "
                           f"({stages['import']['source']}); that folder is the export")
    if out.exists():
        raise HarnessError(f"{out} already exists; name a new folder")
    store = Store(cache_dir)
    teacher_stages = [name for name in stages if name == "teacher" or name.startswith("teacher (member")]
    teacher_dirs = [cache_entry(store, "teacher", stages[name]["key"], run_dir) for name in teacher_stages]
    label_stage = "ensemble" if "members" in stages["label"] else "label"
    augment_dir = cache_entry(store, "augment", stages["augment"]["key"], run_dir)
    label_dir = cache_entry(store, label_stage, stages["label"]["key"], run_dir)
    cfg = t["config"]
    regression = bool(t.get("regression"))

    table = label.read_transfer_set(augment_dir / "transfer.arrow")
    logits = np.load(label_dir / "logits.npy", mmap_mode="r")
    columns = [table.column(c).to_pylist() for c in label.text_columns(table)]
    first = {**cfg["teacher"], **(cfg["teacher"].get("members") or [{}])[0]}  # the teacher, or an ensemble's first member
    teacher = TEACHERS.get(first["name"]).load(teacher_dirs[0] / "model", first["max_length"])
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        pq.write_table(rows_table(table, np.asarray(logits), regression), tmp / ROWS)
        pq.write_table(vectors_table(Vocab.from_texts(columns).itos, teacher), tmp / VECTORS)
        teacher_model = t["models"].get("teacher", {})
        meta = {
            "format": FORMAT, "version": VERSION, "task": task_name, "num_labels": int(logits.shape[1]),
            "regression": regression, "text_columns": label.text_columns(table), "rows": table.num_rows,
            "originals": stages["augment"]["originals"], "synthetic": stages["augment"]["synthetic"],
            "teacher": {"name": cfg["teacher"]["name"], "checkpoint": cfg["teacher"]["checkpoint"],
                        "members": cfg["teacher"].get("members", []), "scores": teacher_model.get("scores", {}),
                        "member_scores": [m["scores"] for m in teacher_model.get("members", [])],
                        "vectors_from": teacher_dirs[0].name},
            "augment": cfg["augment"], "label": {"backend": cfg["teacher"].get("label_backend", "torch"),
                                                 "batch_size": stages.get("label (member 1)", stages["label"]).get(
                                                     "batch", cfg["teacher"]["label_batch_size"])},
            "seed": cfg["seed"], "select_on": t["data"].get("select_on", "dev"), "selection": t["data"].get("selection"),
            "cache_keys": {name: stages[name]["key"] for name in (*teacher_stages, "augment", "label")},
            "source": {"run": str(run_dir), "commit": results.get("environment", {}).get("git_commit"),
                       "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            "files": {name: {"bytes": (tmp / name).stat().st_size, "sha256": sha256(tmp / name)} for name in (ROWS, VECTORS)},
        }
        write_json_atomic(tmp / META, meta)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def read_metadata(folder: Path, task: Task) -> dict:
    """An exported transfer set's metadata, after checking it fits `task` and its files are intact.

    Raises:
        HarnessError: naming the folder (and file) and what is wrong.
    """
    where = f"transfer.source {folder}"
    if not (folder / META).is_file():
        raise HarnessError(f"{where}: no {META}; expected a folder written by `harness export-transfer`")
    try:
        meta = json.loads((folder / META).read_text())
    except json.JSONDecodeError as e:
        raise HarnessError(f"{where}: {META} is not valid JSON (line {e.lineno}: {e.msg})") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise HarnessError(f"{where}: {META} is not a {FORMAT} of version {VERSION}")
    if meta["task"] != task.name:
        raise HarnessError(f"{where}: a transfer set of task {meta['task']}, not {task.name}")
    if meta["num_labels"] != task.num_labels or meta["regression"] != task.is_regression:
        raise HarnessError(f"{where}: {meta['num_labels']} teacher output(s) per row, but task {task.name} has "
                           f"{task.num_labels}")
    for name, expected in meta["files"].items():
        path = folder / name
        if not path.is_file():
            raise HarnessError(f"{where}: {name} is missing")
        if path.stat().st_size != expected["bytes"] or sha256(path) != expected["sha256"]:
            raise HarnessError(f"{where}: {name} does not match its size and sha256 in {META} (damaged or edited)")
    return meta


def unpack(folder: Path, meta: dict, work: Path) -> None:
    """The exported rows as the stage files students read: `transfer.arrow` (texts, gold labels),
    `logits.npy`, and the teacher's word vectors.

    Raises:
        HarnessError: the rows are not what the metadata says (counts, originals first).
    """
    table = pq.read_table(folder / ROWS)
    n, originals = table.num_rows, meta["originals"]
    synthetic = table.column("synthetic").to_numpy(zero_copy_only=False)
    if n != meta["rows"] or synthetic[:originals].any() or not synthetic[originals:].all():
        raise HarnessError(f"transfer.source {folder}: {ROWS} holds {n} rows, {int(synthetic.sum())} synthetic; "
                           f"{META} says {meta['rows']}, the first {originals} original")
    texts = [table.column(c).to_pylist() for c in meta["text_columns"]]
    gold = table.column("label").to_pylist()
    augment.write_transfer_set(zip(zip(*texts), gold), len(texts), work / "transfer.arrow", meta["regression"])
    if meta["regression"]:
        logits = table.column("score").to_numpy().astype(np.float32)[:, None]
    else:
        logits = table.column("logits").combine_chunks().flatten().to_numpy().reshape(n, meta["num_labels"])
    np.save(work / "logits.npy", np.ascontiguousarray(logits, dtype=np.float32))
    shutil.copyfile(folder / VECTORS, work / VECTORS)


def imported_vectors(folder: Path, words: list[str]) -> tuple[np.ndarray, dict]:
    """Initial vectors of `words` from an imported transfer set's teacher vectors (row 0, padding, at
    zero), as `embeddings.initial_vectors` gives them for `embedding: teacher`.

    Raises:
        HarnessError: a word the export has no vector for.
    """
    table = pq.read_table(folder / VECTORS)
    row = {w: i for i, w in enumerate(table.column("word").to_pylist())}
    missing = [w for w in words if w not in row]
    if missing:
        raise HarnessError(f"{folder / VECTORS}: no vector for {len(missing)} word(s) of the students' vocabulary, "
                           f"e.g. {missing[0]!r}")
    idx = np.array([row[w] for w in words], dtype=np.int64)
    table_vectors = table.column("vector").combine_chunks()
    dim = table_vectors.type.list_size
    vectors = table_vectors.flatten().to_numpy().reshape(-1, dim)[idx].astype(np.float32)
    one_piece = table.column("one_piece").to_numpy(zero_copy_only=False)[idx]
    vectors[0] = 0.0
    return vectors, vectors_meta("teacher", vectors, float(one_piece.mean()) if len(words) else 0.0)


def overlap(originals: list[tuple[str, ...]], select: list[tuple[str, ...]]) -> int:
    """How many examples of the split this run chooses checkpoints on are among the transfer set's
    original rows (a transfer set exported under other selection settings trains on them). Originals
    are stored tokenised and space-joined (augment.generate), so `select` is compared that way."""
    sides = len(select[0]) if select else 1
    flat = tokenize_many([s for example in select for s in example])
    chosen_on = {tuple(" ".join(t) for t in flat[i : i + sides]) for i in range(0, len(flat), sides)}
    return sum(1 for row in set(originals) if row in chosen_on)
