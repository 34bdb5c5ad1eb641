"""Teacher logits for the whole transfer set, in length-sorted chunks, resumable after a kill.

The logits live in a memory-mapped `logits.npy` (N, K) inside the stage's work folder; after each
chunk the array is flushed and `progress.json` records how many chunks are done.

Chunks go shortest rows first, so each takes longer than the last (SST-2's 825,793 rows on a CPU: 83 s for
the first chunk, 222 s for the 23rd) and an ETA from the rate so far would be about half the truth. The bar's
ETA comes from the chunks' lengths instead (`seconds_left`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.optimize import nnls

from harness.core.progress import Bar
from harness.data.augment import MASK
from harness.engine import device
from harness.engine.cache import reserve, write_json_atomic

CHUNK = 20_000


def read_transfer_set(path: Path) -> pa.Table:
    """The transfer set written by augment.write_transfer_set, memory-mapped."""
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_stream(source).read_all()


def has_gold(labels: np.ndarray) -> np.ndarray:
    """Which rows of a transfer set's label column carry a gold label (the originals): synthetic rows
    hold -1 (classes) or NaN (regression scores)."""
    return ~np.isnan(labels) if labels.dtype.kind == "f" else labels >= 0


def text_columns(table: pa.Table) -> list[str]:
    return [c for c in ("text_a", "text_b") if c in table.column_names]


def rows(table: pa.Table, idx: np.ndarray | None = None) -> list[tuple[str, ...]]:
    """Examples as tuples of strings (all, or those at `idx`)."""
    cols = [table.column(c) if idx is None else table.column(c).take(pa.array(idx)) for c in text_columns(table)]
    return list(zip(*(c.to_pylist() for c in cols)))


def teacher_texts(teacher, table: pa.Table, idx: np.ndarray) -> list[tuple[str, ...]]:
    """The rows at `idx` as the teacher reads them: augmentation's mask token written as the teacher's."""
    texts = rows(table, idx)
    if teacher.mask_token != MASK:
        texts = [tuple(s.replace(MASK, teacher.mask_token) for s in t) for t in texts]
    return texts


def seconds_left(seconds: list[float], rows: list[int], chars: list[int], rows_left: int, chars_left: int) -> float | None:
    """Seconds the chunks left will take, when a chunk takes a * rows + b * characters: a and b (not negative)
    fitted by least squares on the chunks timed so far. None before two chunks are timed."""
    if len(seconds) < 2:
        return None
    (a, b), _ = nnls(np.array([rows, chars], dtype=float).T, np.array(seconds, dtype=float))
    return float(a * rows_left + b * chars_left)


def label(teacher, table: pa.Table, batch_size: int, work: Path, num_labels: int) -> None:
    """Fill `work/logits.npy` with teacher logits for every row of `table`, resuming if partly done.
    Under several processes each chunk's rows are split across ranks and gathered; rank 0 writes."""
    rt = device.current()
    n = table.num_rows
    logits_path, progress_path = work / "logits.npy", work / "progress.json"
    done = 0
    if rt.main:
        done = json.loads(progress_path.read_text())["chunks"] if progress_path.exists() else 0
        if done == 0 or not logits_path.exists():
            done = 0
            out = np.lib.format.open_memmap(logits_path, mode="w+", dtype=np.float32, shape=(n, num_labels))
            reserve(logits_path)  # a full disk: one-line ENOSPC now, not a SIGBUS mid-way
        else:
            out = np.load(logits_path, mmap_mode="r+")
    done = int(device.broadcast([done])[0])
    lengths = sum(pc.utf8_length(table.column(c)).to_numpy(zero_copy_only=False) for c in text_columns(table))
    order = np.argsort(lengths, kind="stable")
    chunks = [order[i : i + CHUNK] for i in range(0, n, CHUNK)]

    def teacher_logits(idx: np.ndarray) -> np.ndarray:
        return teacher.logits(teacher_texts(teacher, table, idx), batch_size)

    chars = [int(lengths[chunk].sum()) for chunk in chunks]
    timed: tuple[list[float], list[int], list[int]] = ([], [], [])  # this process's chunks: seconds, rows, characters
    bar = Bar(total=n, initial=min(done * CHUNK, n), desc="label transfer set", unit="ex", mininterval=2)
    for c in range(done, len(chunks)):
        start = time.perf_counter()
        idx = np.sort(chunks[c])
        logits = device.gather_rows(idx, teacher_logits, num_labels)
        if rt.main:
            out[idx] = logits
            out.flush()
            write_json_atomic(progress_path, {"chunks": c + 1, "of": len(chunks)})
        for column, value in zip(timed, (time.perf_counter() - start, len(idx), chars[c])):
            column.append(value)
        bar.set_eta(seconds_left(*timed, rows_left=n - bar.n - len(idx), chars_left=sum(chars[c + 1 :])))
        bar.update(len(idx))
    bar.close()
