"""The students' fast text path (harness/data/text.py) gives exactly NLTK's tokens and the former ids."""

from __future__ import annotations

import random
import re
import sys

import nltk
import numpy as np
import pytest
import regex
import torch
from nltk.tokenize.destructive import NLTKWordTokenizer

from harness.core.config import AugmentConfig
from harness.data import augment, text
from harness.data.augment import generate
from harness.data.batching import TokenIds
from harness.data.tasks import load_task
from harness.engine import ort
from harness.engine.wordmodel import StudentPredictor, Vocab

TRICKY = [
    # quotes: straight, doubled, TeX, curly, guillemets, backticks
    '"Hello," he said.', 'He said "no"', '"', '""', '"a"', 'a"', '("quoted")', "[''x'']", '{"y"}', "<'z'>",
    "''quoted''", "``tex quotes''", "'single quoted'", "`single backtick`", "```", "a`b", "it`s", "“curly”",
    "‘single curly’", "„low“", "«guillemets»", "it’s", "don’t", "say ‘hi’ now", '"start', 'end"', '"', "''", "' s",
    # clitics and contractions
    "can't", "cannot", "CANNOT", "Cannot go", "gonna", "GONNA", "gimme", "lemme", "gotta", "wanna go", "wanna",
    "wanna.", "wanna\tgo", "d'ye", "D'YE", "more'n", "won't", "shan't", "y'all", "I'm", "you're", "they've", "she'll",
    "he'd", "it's", "IT'S", "o'clock", "rock'n'roll", "rock 'n' roll", "ain't", "DON'T", "don't'", "can'tcannot",
    "'tis the season", "'Twas brillig", "it 'TWAS", "'90s", "the '80s", "'em", "x's", "X'S", "James' book", "'s",
    "cannot'tis", "gonna'tis", "wan na", "can not", "kannot", "scannot", "cannotx", "gimmie", "lemmey",
    # case folding that stdlib re's (?i) sees and str.lower does not
    "it 'tiſ time", "gımme more", "İs 'tİs", "CANNOT ſ", "gotta İ", "'twaſ", "wannaı",
    # periods, ellipses, numbers
    "Wait... what?", "...", "a..b", "etc.", "U.S.A.", "end.", "end. ", "end.)", 'end."', "end.'", "end.]", "end.»",
    "end. ’", "Mr. Smith went.", "3.14", "$3.88", "1,000,000", "3,36", "a,b", "a:b", "12:30", "a:", "a,", ":", ",",
    "Good muffins cost $3.88\nin New York.  Please buy me\ntwo of them.\nThanks.", "end.\n", "a:\n", "a,\n", "x .",
    # brackets, dashes, symbols
    "(a)", "[b]", "{c}", "<d>", "a--b", "a — b", "a–b", "a‒b", "a―b", "---", "hello!!!", "what?!", "*bold*", "a;b",
    "@user", "#tag", "50%", "AT&T", "C++", "e.g.", "i.e.,", "a/b", "₹500", "？full-width", "x=y+z",
    "http://www.example.com/path?x=1&y=2", "https://t.co/abc.", "user@example.com", "<html>tag</html>",
    # whitespace and unicode
    "tab\tseparated", "new\nline", "trailing newline\n", "nbsp\xa0here", "em\u2003space", "\u3000ideographic",
    "x\x1cy", "x\x1c's", "it's\tok", "multiple   spaces", "  leading", "trailing  ", "", " ", "\t", "\n",
    "Devanagari: नमस्ते", "accents: café naïve", "combining: cafe\u0301", "emoji 😀 test", "Chinese 煥森",
    "\ufeffBOM first", "Straße", "ΣΊΣΥΦΟΣ", "ﬁne ligature",
    # separator-like control characters (a text with NUL goes NLTK's own way)
    "nul\x00byte", "a \x00 b", "\x00", "soh\x01x", "stx \x02",
]


def nltk_tokens(sentence: str) -> list[str]:
    return nltk.word_tokenize(sentence, preserve_line=True)


def tricky_sentences() -> list[str]:
    """TRICKY and a few hundred random joins of two or three of them."""
    rng = random.Random(0)
    joined = [" ".join(rng.sample(TRICKY, rng.choice((2, 3)))) for _ in range(300)]
    glued = ["".join(rng.sample(TRICKY, 2)) for _ in range(100)]
    return TRICKY + joined + glued


def differences(sentences: list[str]) -> list[tuple[str, list[str], list[str]]]:
    ours = text.tokenize_many(sentences)
    return [(s, a, b) for s, a, b in zip(sentences, ours, map(nltk_tokens, sentences)) if a != b]


def test_rules_are_nltks() -> None:
    """NLTK_RULES holds NLTK's own chain: same patterns, flags and replacements, in NLTK's order."""
    assert nltk.tokenize._treebank_word_tokenizer.__class__ is NLTKWordTokenizer
    tok = NLTKWordTokenizer
    chain = [*tok.STARTING_QUOTES, *tok.PUNCTUATION, tok.PARENS_BRACKETS, tok.DOUBLE_DASHES, None, *tok.ENDING_QUOTES]
    chain += [(p, r" \1 \2 ") for p in [*tok.CONTRACTIONS2, *tok.CONTRACTIONS3]]
    assert len(chain) == len(text.NLTK_RULES)
    for theirs, rule in zip(chain, text.NLTK_RULES):
        if theirs is None:
            assert rule.stage == "pad"
            continue
        pattern, repl = theirs
        assert (rule.nltk, rule.nltk_repl) == (pattern.pattern, repl)
        engine = re if rule.stage == "re" else regex
        assert isinstance(pattern if rule.stage == "re" else pattern._rx, engine.Pattern)  # the same engine
        assert engine.compile(rule.nltk, rule.flags).flags == pattern.flags


def test_contraction_prefilter_is_a_superset() -> None:
    """Each contraction pattern spells its CONTRACTION_WORDS entry, and CASE_EXOTIC holds every character
    beyond ASCII that stdlib re's (?i) matches to one of their letters."""
    words = []
    for rule in (r for r in text.NLTK_RULES if r.stage == "re"):
        spelled = re.sub(r"\(\?i\)|\(\?#X\)|\(\?=\\s\)|\\b|[() ]", "", rule.nltk)
        words.append(spelled)
        assert re.search(rule.nltk, f" {spelled} ") and re.search(rule.nltk, f" {spelled.upper()} ")
    assert tuple(words) == text.CONTRACTION_WORDS
    any_letter = re.compile("(?i)" + "|".join(sorted({c for w in words for c in w if c.isalpha()})))  # literals, as in them
    exotic = {chr(cp) for cp in range(128, sys.maxunicode + 1) if not 0xD800 <= cp < 0xE000 and any_letter.fullmatch(chr(cp))}
    assert exotic == set(text.CASE_EXOTIC)


def test_tricky_sentences_tokenise_as_nltk() -> None:
    sentences = tricky_sentences()
    assert len(text._run_chunk(sentences)[1]) == sum("\x00" in s for s in sentences) > 0  # those go NLTK's own way
    assert differences(sentences) == []
    assert [augment.tokenize(s) for s in sentences] == [nltk_tokens(s) for s in sentences]


def test_chunk_edges_do_not_matter(monkeypatch) -> None:
    sentences = tricky_sentences()
    monkeypatch.setattr(text, "CHUNK", 7)
    assert differences(sentences) == []


def test_ids_equal_the_former_encoding(monkeypatch) -> None:
    """Ids equal Vocab.encode(NLTK tokens, max_tokens): truncation, unknown words, empty sentences, and a
    chunk that goes NLTK's own way (a text holding the separator)."""
    sentences = tricky_sentences()
    vocab = Vocab.from_texts([[" ".join(nltk_tokens(s)) for s in sentences[::3]]])  # many words unknown
    monkeypatch.setattr(text, "CHUNK", 64)
    for max_tokens in (1, 3, 64):
        expected = TokenIds.from_lists([vocab.encode(nltk_tokens(s), max_tokens) for s in sentences])
        got = vocab.encode_texts(sentences, max_tokens)
        assert got.flat.dtype == expected.flat.dtype and got.offsets.dtype == expected.offsets.dtype
        np.testing.assert_array_equal(got.offsets, expected.offsets)
        np.testing.assert_array_equal(got.flat, expected.flat)
    assert len(vocab.encode_texts([], 8)) == 0


def test_predictor_and_onnx_encode_use_it() -> None:
    """StudentPredictor.encode (and so OrtStudent, which borrows it) gives one TokenIds per column."""
    assert ort.OrtStudent.encode is StudentPredictor.encode
    vocab = Vocab(["it", "'s", "ca", "n't", "."])
    predictor = StudentPredictor(torch.nn.Linear(1, 1), vocab, {"max_tokens": 4})
    first, second = predictor.encode([("It's fine.", "can't stop"), ("", "it's it's it's it's it's")])
    assert first.flat.tolist() == [1, 3, 1, 6, 1] and first.offsets.tolist() == [0, 4, 5]
    assert second.flat.tolist() == [4, 5, 1, 2, 3, 2, 3] and second.offsets.tolist() == [0, 3, 7]
    assert predictor.encode([]) == []


def test_pad_rows_in_any_order() -> None:
    """TokenIds.pad: each chosen sequence in its row, in the order asked, padded to the longest; lengths."""
    seqs = [[5, 6, 7], [8], [9, 10, 11, 12, 13], [14, 15]]
    ids = TokenIds.from_lists(seqs)
    padded, lengths = ids.pad([2, 0, 1], pad_id=-1)
    assert padded.tolist() == [[9, 10, 11, 12, 13], [5, 6, 7, -1, -1], [8, -1, -1, -1, -1]]
    assert lengths.tolist() == [5, 3, 1] and padded.dtype == lengths.dtype == torch.int64
    padded, lengths = ids.pad(np.array([3]))
    assert padded.tolist() == [[14, 15]] and lengths.tolist() == [2]


def test_augmentation_unchanged(nltk_tagger, monkeypatch) -> None:
    """A transfer set generated with the new tokenize equals the one generated with NLTK's."""
    train = load_task("sst2")["train"]
    texts, labels = train.texts[:300], train.labels[:300]
    cfg = AugmentConfig(n_iter=3)
    ours = list(generate(texts, labels, cfg, seed=1))
    monkeypatch.setattr(augment, "tokenize", nltk_tokens)
    assert list(generate(texts, labels, cfg, seed=1)) == ours


def corpus() -> list[str]:
    sst2, qqp = load_task("sst2"), load_task("qqp")
    return [t[0] for t in sst2["train"].texts + sst2["validation"].texts] + [s for t in qqp["validation"].texts for s in t]


@pytest.mark.slow
def test_every_sst2_and_qqp_dev_sentence(data_root) -> None:
    """All 67,349 + 872 SST-2 sentences and 40,000 QQP dev questions: no difference (about 12 s, most
    of it NLTK's own tokenising)."""
    sentences = corpus()
    assert len(sentences) == 67_349 + 872 + 40_000
    assert differences(sentences) == []
