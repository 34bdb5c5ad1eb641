"""The paper's transfer-set augmentation (Tang et al. 2019, section 3.2).

For each word: with p_mask replace it by [MASK]; else with p_pos by a word of the same POS tag drawn
from the training corpus' unigram distribution of that tag; else keep it. Then, with p_ng, replace
the example by a random n-gram of it, n uniform in 1..ngram_max. Each training example is
augmented n_iter times; pair tasks cycle through changing the first sentence, the second, both.
Duplicates (of each other or of an original) are dropped. Output streams to an Arrow file.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import nltk
import numpy as np
import pyarrow as pa

from harness.core.config import AugmentConfig
from harness.core.errors import HarnessError
from harness.core.progress import Bar
from harness.data import text as text_path

MASK = "[MASK]"
TAG_CHUNK = 10_000  # sentences per POS-tagging call (progress only: tags do not depend on it)
WRITE_BATCH = 50_000


def tokenize(text: str) -> list[str]:
    """NLTK word tokenisation without sentence splitting (needs no punkt data): exactly
    `nltk.word_tokenize(text, preserve_line=True)`, computed by harness/data/text.py."""
    return text_path.tokenize(text)


def use_nltk_data(roots: Sequence[Path]) -> None:
    """Put the first `<root>/nltk_data` holding the POS tagger on NLTK's path, or fail clearly."""
    for root in roots:
        folder = Path(root) / "nltk_data"
        if (folder / "taggers" / "averaged_perceptron_tagger_eng").is_dir():
            if str(folder) not in nltk.data.path:
                nltk.data.path.insert(0, str(folder))
            return
    try:
        nltk.data.find("taggers/averaged_perceptron_tagger_eng")
    except LookupError:
        looked = "; ".join(str(Path(r) / "nltk_data") for r in roots)
        raise HarnessError(
            f"NLTK's POS tagger averaged_perceptron_tagger_eng not found (looked in {looked} and NLTK's "
            "own data path); pass --data-dir holding nltk_data/, or run nltk.download('averaged_perceptron_tagger_eng')"
        ) from None


class PosTable:
    """Per POS tag, the words seen with that tag and their unigram probabilities.

    Args:
        tagged: sentences as lists of (word, tag).
    """

    def __init__(self, tagged: Sequence[Sequence[tuple[str, str]]]) -> None:
        counts: dict[str, Counter] = defaultdict(Counter)
        for sentence in tagged:
            for word, tag in sentence:
                counts[tag][word] += 1
        self.words: dict[str, list[str]] = {}
        self.cdf: dict[str, np.ndarray] = {}
        for tag, counter in counts.items():
            words = sorted(counter)  # sorted: the table must not depend on corpus order
            freq = np.array([counter[w] for w in words], dtype=np.float64)
            self.words[tag] = words
            self.cdf[tag] = np.cumsum(freq) / freq.sum()

    def sample(self, tag: str, rng: np.random.Generator) -> str:
        cdf = self.cdf[tag]
        return self.words[tag][min(int(np.searchsorted(cdf, rng.random(), side="right")), len(cdf) - 1)]


def augment_sentence(
    tokens: Sequence[str], tags: Sequence[str], table: PosTable, rng: np.random.Generator, cfg: AugmentConfig
) -> list[str]:
    """One synthetic variant of one tokenised sentence."""
    draws = rng.random(len(tokens))
    out = []
    for word, tag, x in zip(tokens, tags, draws):
        if x < cfg.p_mask:
            out.append(MASK)
        elif x < cfg.p_mask + cfg.p_pos:
            out.append(table.sample(tag, rng))
        else:
            out.append(word)
    if out and rng.random() < cfg.p_ng:
        n = min(int(rng.integers(1, cfg.ngram_max + 1)), len(out))
        start = int(rng.integers(0, len(out) - n + 1))
        out = out[start : start + n]
    return out


def sides_to_change(iteration: int, n_sides: int) -> tuple[int, ...]:
    """Which sentences of an example change in this round: all for single sentences; for pairs the
    cycle first, second, both."""
    if n_sides == 1:
        return (0,)
    return ((0,), (1,), (0, 1))[iteration % 3]


def tag_corpus(texts: Sequence[tuple[str, ...]]) -> list[tuple[list[list[str]], list[list[str]]]]:
    """Tokens and POS tags of every sentence of every example: tokenised in one pass, tagged a chunk at a time
    (the same tags as one call; the chunks count on a progress bar, as tagging 700k questions takes minutes)."""
    flat = text_path.tokenize_many([s for example in texts for s in example])
    tagged: list[list[tuple[str, str]]] = []
    with Bar(total=len(flat), desc="POS tags", unit="text", mininterval=2) as bar:
        for start in range(0, len(flat), TAG_CHUNK):
            tagged.extend(nltk.pos_tag_sents(flat[start : start + TAG_CHUNK]))
            bar.update(len(flat[start : start + TAG_CHUNK]))
    per_side = len(texts[0]) if texts else 1
    out = []
    for i in range(len(texts)):
        group = tagged[i * per_side : (i + 1) * per_side]
        out.append(([[w for w, _ in s] for s in group], [[t for _, t in s] for s in group]))
    return out


def generate(
    texts: Sequence[tuple[str, ...]],
    labels: Sequence[int] | Sequence[float],
    cfg: AugmentConfig,
    seed: int,
    augment_ids: Sequence[int] | None = None,
) -> Iterator[tuple[tuple[str, ...], int]]:
    """Yield the transfer set: every original (with its gold label) then the unique synthetic
    examples (label None: no gold). Texts come out tokenised and space-joined.

    Args:
        texts: training examples.
        labels: their gold labels (class indices, or a regression task's scores).
        cfg: augmentation settings.
        seed: makes the output deterministic.
        augment_ids: indices of the examples to augment (default: all).
    """
    return ((key, label) for key, label, _ in traced(texts, labels, cfg, seed, augment_ids))


def traced(
    texts: Sequence[tuple[str, ...]],
    labels: Sequence[int] | Sequence[float],
    cfg: AugmentConfig,
    seed: int,
    augment_ids: Sequence[int] | None = None,
) -> Iterator[tuple[tuple[str, ...], int, int]]:
    """`generate`'s rows, each with the index into `texts` of the original it was made from."""
    rng = np.random.default_rng(seed)
    tagged = tag_corpus(texts)
    table = PosTable([list(zip(t, g)) for toks, tags in tagged for t, g in zip(toks, tags)])
    seen: set[tuple[str, ...]] = set()
    for i, ((toks, _), label) in enumerate(zip(tagged, labels)):
        key = tuple(" ".join(t) for t in toks)
        seen.add(key)
        yield key, label, i
    if not cfg.enabled or cfg.n_iter == 0:
        return
    ids = range(len(texts)) if augment_ids is None else augment_ids
    for i in Bar(ids, desc="augment", unit="ex", mininterval=2):
        toks, tags = tagged[i]
        for it in range(cfg.n_iter):
            new = list(toks)
            for side in sides_to_change(it, len(toks)):
                new[side] = augment_sentence(toks[side], tags[side], table, rng, cfg)
            key = tuple(" ".join(t) for t in new)
            if key not in seen and all(key):
                seen.add(key)
                yield key, None, i


NO_GOLD = {pa.int64(): -1, pa.float64(): float("nan")}  # a synthetic row's label, by the label column's type


def write_transfer_set(rows: Iterator[tuple[tuple[str, ...], int | float | None]], n_sides: int, path: Path,
                       regression: bool = False) -> int:
    """Stream (texts, label) rows into an Arrow IPC stream file; returns the row count. Labels are
    int64 class indices (-1: synthetic, no gold label), or float64 scores of a regression task (NaN:
    synthetic); see `label.has_gold`."""
    names = ["text_a", "text_b"][:n_sides]
    label_type = pa.float64() if regression else pa.int64()
    schema = pa.schema([*(pa.field(n, pa.string()) for n in names), pa.field("label", label_type)])
    count = 0
    cols: list[list] = [[] for _ in range(n_sides + 1)]
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:

        def flush() -> None:
            writer.write_batch(pa.record_batch(cols, schema=schema))
            for c in cols:
                c.clear()

        for texts, label in rows:
            for c, t in zip(cols, texts):
                c.append(t)
            cols[-1].append(NO_GOLD[label_type] if label is None else label)
            count += 1
            if len(cols[-1]) >= WRITE_BATCH:
                flush()
        flush()
    return count
