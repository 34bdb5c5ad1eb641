"""The paper's augmentation rules: masking, POS-guided replacement, n-gram sampling, dedupe."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from harness.core.config import AugmentConfig
from harness.data import augment
from harness.data.augment import MASK, PosTable, augment_sentence, generate, sides_to_change, tokenize, write_transfer_set
from harness.engine.label import has_gold, read_transfer_set

TAGS = ("NN", "VB", "JJ", "RB")
WORDS_PER_TAG = 50


def make_table() -> PosTable:
    """A table with many distinct table-only words per tag, so a replacement never equals an input word."""
    return PosTable([[(f"{tag}_{k}", tag) for tag in TAGS for k in range(WORDS_PER_TAG)]])


def make_sentence(i: int, length: int = 20) -> tuple[list[str], list[str]]:
    """Distinct dummy words (never in the table) with given tags."""
    tokens = [f"w{i}_{j}" for j in range(length)]
    return tokens, [TAGS[j % len(TAGS)] for j in range(length)]


def cfg(**kw: float) -> AugmentConfig:
    """An AugmentConfig with n-gram sampling off unless set."""
    return AugmentConfig(**{"p_ng": 0.0, **kw})


SENTENCES = [
    "a gorgeous , witty , seductive movie .",
    "the film is strictly routine .",
    "it is a bad film",
    "an utterly charming and hilarious film",
    "the acting is just terrible",
    "this is the best movie of the year",
    "a dull , lifeless story",
    "funny and touching",
]
LABELS = [1, 0, 0, 1, 0, 1, 0, 1]


def test_mask_and_pos_rates() -> None:
    """p_mask=0.1, p_pos=0.1 mask ~10% and replace ~10% of 40,000 tokens."""
    table, rng, c = make_table(), np.random.default_rng(0), cfg(p_mask=0.1, p_pos=0.1)
    masked = replaced = total = 0
    for i in range(2000):
        tokens, tags = make_sentence(i)
        out = augment_sentence(tokens, tags, table, rng, c)
        assert len(out) == len(tokens)
        masked += sum(o == MASK for o in out)
        replaced += sum(o != MASK and o != t for o, t in zip(out, tokens, strict=True))
        total += len(tokens)
    assert abs(masked / total - 0.1) < 0.01
    assert abs(replaced / total - 0.1) < 0.01


def test_mask_only_masks_everything() -> None:
    """p_mask=1 turns every token into [MASK]."""
    tokens, tags = make_sentence(0)
    out = augment_sentence(tokens, tags, make_table(), np.random.default_rng(1), cfg(p_mask=1.0, p_pos=0.0))
    assert out == [MASK] * len(tokens)


def test_pos_only_keeps_tags() -> None:
    """p_pos=1 replaces every token by a word of the same tag, never by [MASK]."""
    table, rng = make_table(), np.random.default_rng(2)
    for i in range(50):
        tokens, tags = make_sentence(i)
        out = augment_sentence(tokens, tags, table, rng, cfg(p_mask=0.0, p_pos=1.0))
        assert MASK not in out
        assert all(word in table.words[tag] for word, tag in zip(out, tags, strict=True))


def test_pos_sampling_follows_unigram_counts() -> None:
    """Counts a:3, b:1 under one tag give ~75% a."""
    table = PosTable([[("a", "NN")] * 3 + [("b", "NN"), ("z", "VB")]])
    rng = np.random.default_rng(3)
    draws = Counter(table.sample("NN", rng) for _ in range(20_000))
    assert set(draws) == {"a", "b"}
    assert abs(draws["a"] / 20_000 - 0.75) < 0.015


def test_ngram_is_contiguous_and_bounded() -> None:
    """With p_ng=1 the output is a contiguous slice of 1..min(5, len) tokens; long inputs see all lengths."""
    table, rng, c = make_table(), np.random.default_rng(4), cfg(p_mask=0.0, p_pos=0.0, p_ng=1.0, ngram_max=5)
    for length in (1, 3, 12):
        tokens, tags = make_sentence(length, length)
        seen = set()
        for _ in range(500):
            out = augment_sentence(tokens, tags, table, rng, c)
            assert 1 <= len(out) <= min(5, length)
            start = tokens.index(out[0])
            assert tokens[start : start + len(out)] == out
            seen.add(len(out))
        assert seen == set(range(1, min(5, length) + 1))


def test_generate_originals_first_and_no_duplicates(nltk_tagger: None) -> None:
    """Originals come first with gold labels; synthetic rows are unique, new, and have no label (None)."""
    texts = [(s,) for s in SENTENCES]
    rows = list(generate(texts, LABELS, AugmentConfig(n_iter=10, p_ng=0.5), seed=5))
    originals = [(" ".join(tokenize(s)),) for s in SENTENCES]
    assert [r for r, _ in rows[: len(texts)]] == originals
    assert [label for _, label in rows[: len(texts)]] == LABELS
    synthetic = rows[len(texts) :]
    assert synthetic, "n_iter=10 should produce synthetic examples"
    assert all(label is None for _, label in synthetic)
    keys = [r for r, _ in rows]
    assert len(keys) == len(set(keys))
    assert not set(originals) & {r for r, _ in synthetic}


def test_generate_is_deterministic(nltk_tagger: None) -> None:
    """The same seed gives the same transfer set; another seed a different one."""
    texts = [(s,) for s in SENTENCES]
    c = AugmentConfig(n_iter=3)
    first = list(generate(texts, LABELS, c, seed=7))
    assert first == list(generate(texts, LABELS, c, seed=7))
    assert first != list(generate(texts, LABELS, c, seed=8))


def test_tagging_in_chunks_gives_one_calls_tags(nltk_tagger: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """tag_corpus tags a chunk at a time (for its progress bar): the tokens and tags are those of one
    nltk.pos_tag_sents call over NLTK's own tokenisation, pairs split back by side."""
    import nltk

    monkeypatch.setattr(augment, "TAG_CHUNK", 3)
    pairs = [(a, b) for a, b in zip(SENTENCES, SENTENCES[1:] + SENTENCES[:1])]
    flat = [nltk.word_tokenize(s, preserve_line=True) for pair in pairs for s in pair]
    tags = nltk.pos_tag_sents(flat)
    expected = [([[w for w, _ in s] for s in tags[2 * i : 2 * i + 2]], [[t for _, t in s] for s in tags[2 * i : 2 * i + 2]])
                for i in range(len(pairs))]
    assert len(flat) > 3 * augment.TAG_CHUNK
    assert augment.tag_corpus(pairs) == expected


def test_sides_to_change_cycle() -> None:
    """Pairs cycle first, second, both; single sentences always change."""
    assert [sides_to_change(i, 2) for i in range(6)] == [(0,), (1,), (0, 1)] * 2
    assert {sides_to_change(i, 1) for i in range(6)} == {(0,)}


def test_generate_pairs_follow_the_cycle(nltk_tagger: None) -> None:
    """With p_mask=1, round 0 masks only the first sentence, round 1 the second, round 2 both."""
    texts = [("good movie", "great film")]
    rows = list(generate(texts, [1], AugmentConfig(n_iter=3, p_mask=1.0, p_pos=0.0, p_ng=0.0), seed=0))
    mask2 = f"{MASK} {MASK}"
    assert [r for r, _ in rows] == [
        ("good movie", "great film"),
        (mask2, "great film"),
        ("good movie", mask2),
        (mask2, mask2),
    ]


@pytest.mark.parametrize("n_sides", [1, 2])
def test_transfer_set_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n_sides: int) -> None:
    """write_transfer_set then read_transfer_set gives the same rows, across several record batches."""
    monkeypatch.setattr(augment, "WRITE_BATCH", 2)
    rows = [(tuple(f"s{i}_{k} é" for k in range(n_sides)), i % 3 - 1) for i in range(5)]
    path = tmp_path / "transfer.arrow"
    assert write_transfer_set(iter(rows), n_sides, path) == len(rows)
    table = read_transfer_set(path)
    names = ["text_a", "text_b"][:n_sides]
    assert table.column_names == [*names, "label"]
    got = [(tuple(r[n] for n in names), r["label"]) for r in table.to_pylist()]
    assert got == rows


def test_regression_transfer_set_keeps_float_scores(tmp_path: Path) -> None:
    """A regression task's gold scores stay floats (3.8 is not 3); synthetic rows are NaN, and has_gold
    tells them apart, as -1 does for classes."""
    rows = [(("a", "b"), 3.8), (("c", "d"), 0.0), (("e", "f"), None)]
    path = tmp_path / "transfer.arrow"
    write_transfer_set(iter(rows), 2, path, regression=True)
    labels = read_transfer_set(path).column("label").to_numpy()
    assert labels.dtype == np.float64 and labels[:2].tolist() == [3.8, 0.0] and np.isnan(labels[2])
    assert has_gold(labels).tolist() == [True, True, False]
    assert has_gold(np.array([1, 0, -1])).tolist() == [True, True, False]
