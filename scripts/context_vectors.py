"""Whole-word vectors from a transformer's hidden states, for `--set student.embedding=FILE`.

The paper's student started from word2vec: one 300-wide vector per whole word. The harness's default
(`embedding: teacher`) gives a word the mean of its pieces' *input* embeddings, and only 55% of SST-2's
transfer-set words are one piece in mpnet's vocabulary. This script gives every word of a corpus the mean,
over its occurrences there, of its pieces' hidden states at one layer of an encoder: the "aggregated"
static vectors of Bommasani et al. (2020). Words are the harness's own tokens (as the students see them),
given to the model's tokenizer already split, so each vector belongs to exactly one student word.

    .venv/bin/python scripts/context_vectors.py --model mpnet --texts EXPORT --layers 4,8,12 --out VECTORS
    # VECTORS/layer_8.parquet (`word`, `vector`, `count`), then:
    harness run ... --set student.embedding=VECTORS/layer_8.parquet

`--texts` is an `export-transfer` folder (its original rows, already tokenised) or a TSV with a header
(`--columns`, tokenised here). `--probe` scores each layer's vectors before any student trains: a logistic
regression on each example's mean word vector, fitted on 90% of the texts and scored on the other 10%
(the folder's `label` column, or `--label-column`); it never reads dev.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from transformers import AutoModel, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.core.errors import HarnessError  # noqa: E402
from harness.core.progress import Bar  # noqa: E402
from harness.data.augment import MASK  # noqa: E402
from harness.data.text import tokenize_many  # noqa: E402
from teachers.hf import resolve_checkpoint  # noqa: E402


def read_texts(path: Path, columns: list[str], label_column: str) -> tuple[list[list[list[str]]], np.ndarray | None]:
    """Each text column's examples as word lists, and the labels (None without them)."""
    if path.is_dir():  # an export-transfer folder: its originals, stored tokenised and space-joined
        meta = json.loads((path / "metadata.json").read_text())
        table = pq.read_table(path / "transfer.parquet").slice(0, meta["originals"])
        texts = [[s.split(" ") if s else [] for s in table.column(c).to_pylist()] for c in meta["text_columns"]]
        return texts, table.column("label").to_numpy()
    frame = pd.read_csv(path, sep="\t", quoting=3, dtype=str, keep_default_na=False)
    missing = [c for c in columns + ([label_column] if label_column else []) if c not in frame.columns]
    if missing:
        raise HarnessError(f"{path}: no column {missing[0]!r} (it has {', '.join(frame.columns)})")
    labels = pd.to_numeric(frame[label_column]).to_numpy() if label_column else None
    return [tokenize_many(frame[c].tolist()) for c in columns], labels


@torch.inference_mode()
def aggregate(model, tokenizer, sentences: list[list[str]], layers: list[int], batch: int,
              max_length: int) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
    """Per word: the sum over its occurrences of its pieces' mean hidden state at each of `layers`, and its count.
    `[MASK]` (augmentation's masked word) is given to the model as its mask token."""
    index: dict[str, int] = {}
    for words in sentences:
        for w in words:
            index.setdefault(w, len(index))
    width = model.config.hidden_size
    sums = np.zeros((len(layers), len(index), width), dtype=np.float32)
    counts = np.zeros(len(index), dtype=np.int64)
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    bar = Bar(total=len(order), desc="hidden states", unit="text", mininterval=5)
    for start in range(0, len(order), batch):
        chunk = [sentences[i] for i in order[start : start + batch] if sentences[i]]
        if not chunk:
            bar.update(min(batch, len(order) - start))
            continue
        given = [[tokenizer.mask_token if w == MASK else w for w in s] for s in chunk]
        enc = tokenizer(given, is_split_into_words=True, truncation=True, max_length=max_length, padding=True,
                        return_tensors="pt")
        states = model(**enc, output_hidden_states=True).hidden_states
        picked = torch.stack([states[layer] for layer in layers]).numpy()  # (layers, batch, pieces, width)
        for b, words in enumerate(chunk):
            word_ids = np.array([-1 if w is None else w for w in enc.word_ids(b)])
            for position in np.unique(word_ids[word_ids >= 0]):
                row = index[words[position]]
                sums[:, row] += picked[:, b, word_ids == position].mean(1)
                counts[row] += 1
        bar.update(min(batch, len(order) - start))
    bar.close()
    return index, sums, counts


def probe(vectors: dict[str, np.ndarray], texts: list[list[list[str]]], labels: np.ndarray, seed: int) -> float:
    """Held-out accuracy (%) of a logistic regression on each example's mean word vector (pairs: the two means
    and their product and absolute difference, as the Siamese head sees them), 90/10 split of the texts."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    width = len(next(iter(vectors.values())))

    def mean(words: list[str]) -> np.ndarray:
        known = [vectors[w] for w in words if w in vectors]
        return np.mean(known, 0) if known else np.zeros(width, np.float32)

    sides = [np.stack([mean(s) for s in column]) for column in texts]
    x = sides[0] if len(sides) == 1 else np.hstack([sides[0], sides[1], sides[0] * sides[1], np.abs(sides[0] - sides[1])])
    x_train, x_test, y_train, y_test = train_test_split(x, labels, test_size=0.1, random_state=seed)
    fit = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    return 100.0 * float(fit.score(x_test, y_test))


def normalise(vectors: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The seen words' vectors centred on their mean and scaled so that their median length is 1: the scale of a
    teacher's input embeddings (MiniLM's median 1.02). Hidden states are 8-12 times longer and share a large
    common direction (MiniLM layer 4: median length 12.1, mean vector 5.9 long); as the student's input they cost
    3.1-3.4 points of SST-2 dev at quick size, centred and scaled 0.7-0.9, within noise
    (reports/sst2-paper-protocol/whole-word/README.md). Off by default: earlier files are made again as they were."""
    seen = counts > 0
    centred = vectors - vectors[seen].mean(0)
    return (centred / np.median(np.linalg.norm(centred[seen], axis=1))).astype(np.float32)


def write_vectors(path: Path, index: dict[str, int], vectors: np.ndarray, counts: np.ndarray) -> None:
    """`word`, `vector` (fixed-size list), `count` of the words seen at least once (a word whose every occurrence
    was cut off, or that the tokenizer drops, has none), written to a temporary name first (no half-written file)."""
    seen = counts > 0
    flat = pa.array(vectors[seen].reshape(-1), type=pa.float32())
    table = pa.table({"word": [w for w, i in index.items() if seen[i]],
                      "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]), "count": counts[seen]})
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="minilm", help="an encoder: minilm, mpnet, a local folder or a hub id")
    ap.add_argument("--texts", type=Path, required=True, help="an export-transfer folder, or a TSV with a header")
    ap.add_argument("--columns", default="sentence", help="the TSV's text columns, comma-separated (pairs: two)")
    ap.add_argument("--label-column", default="", help="the TSV's label column, for --probe")
    ap.add_argument("--layers", default="", help="comma-separated hidden-state layers (0 = the embedding layer's "
                    "output); default: every layer")
    ap.add_argument("--out", type=Path, required=True, help="folder for layer_<L>.parquet (and probe.json)")
    ap.add_argument("--probe", action="store_true", help="score each layer's vectors with a held-out linear probe")
    ap.add_argument("--normalise", action="store_true", help="centre the vectors and scale them to a median length "
                    "of 1, a teacher's input embeddings' scale (hidden states are 8-12x longer)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=128, help="pieces per text; longer texts are cut")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        texts, labels = read_texts(args.texts, [c for c in args.columns.split(",") if c], args.label_column)
        if args.probe and labels is None:
            raise HarnessError("--probe needs labels: an export folder, or --label-column")
        folder = resolve_checkpoint(args.model)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder).eval()
        every = range(model.config.num_hidden_layers + 1)
        layers = [int(x) for x in args.layers.split(",")] if args.layers else list(every)
        bad = [x for x in layers if x not in every]
        if bad:
            raise HarnessError(f"--layers: {bad[0]} is not a layer of {args.model} (0-{every[-1]})")
        start = time.perf_counter()
        index, sums, counts = aggregate(model, tokenizer, [s for column in texts for s in column], layers,
                                        args.batch, args.max_length)
        print(f"{len(index):,} words from {sum(map(len, texts)):,} texts in {time.perf_counter() - start:.0f} s")
        args.out.mkdir(parents=True, exist_ok=True)
        scores = {}
        for k, layer in enumerate(layers):
            vectors = sums[k] / np.maximum(counts, 1)[:, None]
            vectors = normalise(vectors, counts) if args.normalise else vectors
            write_vectors(args.out / f"layer_{layer}.parquet", index, vectors, counts)
            if args.probe:
                scores[layer] = round(probe(dict(zip(index, vectors)), texts, labels, seed=13), 2)
                print(f"layer {layer}: probe accuracy {scores[layer]:.2f}")
        if scores:
            (args.out / "probe.json").write_text(json.dumps({"model": args.model, "probe_accuracy": scores}, indent=1))
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
