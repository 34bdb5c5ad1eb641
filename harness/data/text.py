r"""The students' text path: NLTK's word tokens, and vocabulary ids, for a whole column at once.

`harness.data.augment.tokenize` has always been `nltk.word_tokenize(text, preserve_line=True)`: NLTK's
NLTKWordTokenizer (an improved Treebank tokenizer) over the text as one line. That tokenizer is a
chain of regular-expression substitutions that pad punctuation, quotes and clitics with spaces, then
`str.split()`. NLTK runs each of its 33 substitutions once per sentence through `nltk.redos` (the
`regex` engine under a wall-clock timeout), which made it slower than the BiLSTM it feeds.

How this stays exact. It runs NLTK's substitutions in NLTK's order, with NLTK's engines (`regex` for
the patterns NLTK compiles through `nltk.redos`, stdlib `re` for its contractions), but once over a
chunk of CHUNK sentences joined by a separator SEP (NUL), so each pass costs one call, not one per
sentence. SEP behaves exactly like the edge of a string:
- `^` becomes `(?<=SEP)`, `$` becomes `(?=\n?SEP)` (NLTK's `$` also matches before a final newline),
  and each negated class that could match SEP (`[^\.]`, `[^\d]`, `[^' ]`, `[^']`) excludes it;
- nothing else can match or cross SEP: it is neither `\s` nor `\w` for either engine (nor for
  `str.split`) and in no rule's class, so `\b`, `(?<!\w)` and `(?=\s)` see it as a string's edge,
  and no replacement creates or removes one;
- NLTK's `" " + text + " "` step pads every sentence at once (`SEP` -> `" SEP "`), so SEP ends up a
  token of its own and one `str.split()` of the chunk yields every sentence's tokens, SEP after each.
A text that holds SEP itself (never seen in practice) is tokenised by NLTK instead.
Four changes only save time (why none changes a token: at `NLTK_RULES` and `_Chain._contract`): a rule is
skipped when the chunk lacks every character its matches need; `\s+` -> " " is skipped when the only
whitespace is " "; two one-character leading contexts become lookbehinds; and the ten contraction
rules, rare, run only over the sentences that spell one of them.

tests/test_text_path.py checks `NLTK_RULES` against the installed NLTK's own patterns, and compares
the tokens with NLTK's on tricky sentences and on every SST-2 train and dev sentence and QQP dev
question (108,221 sentences, no difference).

Vocabulary lookup is one dict lookup per token over the chunk's flat token list (SEP looks up as -1);
the ids go straight into a `TokenIds` (flat int32 ids plus offsets), truncation to `max_tokens` and
an empty sentence's single unknown id done in numpy: no Python list per sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from functools import cache
from itertools import repeat
from typing import NamedTuple

import numpy as np
import regex

from harness.data.batching import TokenIds

SEP = "\x00"  # a control character: neither \s nor \w, in no rule's class
OTHER_WHITESPACE = (  # what the regex engine's \s matches besides " "
    "\t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
CHUNK = 4096  # sentences per joined string: large enough to amortise each pass, small enough to stay in cache


class Rule(NamedTuple):
    r"""One substitution of NLTK's chain: NLTK's own, and how it runs over a joined chunk.

    Attributes:
        stage: NLTK's list it belongs to ("pad" is NLTK's `" " + text + " "`; "re" marks its
            contractions, compiled with stdlib `re`; the others go through `nltk.redos`, so `regex`).
        nltk: NLTK's pattern source, as NLTK writes it.
        flags: NLTK's compile flags.
        nltk_repl: NLTK's replacement.
        ours: the pattern over a chunk (SEP written as \x00).
        repl: its replacement.
        needs: characters one of which the chunk must hold for the substitution to change its
            tokens (every match holds one; for `\s+`, see below); without any it is skipped ("": always).
    """

    stage: str
    nltk: str
    flags: int
    nltk_repl: str
    ours: str
    repl: str
    needs: str


def _same(stage: str, pattern: str, flags: int, repl: str, needs: str) -> Rule:
    return Rule(stage, pattern, flags, repl, pattern, repl, needs)


# NLTKWordTokenizer.tokenize's chain, in its order. Where `ours` differs from NLTK's pattern:
# - `^`, `$` and negated classes: SEP stands for the string's edges (module docstring);
# - `\s+` -> " " runs only when the chunk holds whitespace other than spaces. Over spaces alone it
#   only shortens runs of them, and no later rule sees a run's length: each pattern after it holds
#   at most one space, next to a character that is not one (`' ` and `\b` contexts, ` 't`), so
#   its matches, and the tokens, are the same either way (the text between tokens is not);
# - a leading one-character context moves into a lookbehind, so that the search starts at the literal
#   quote or clitic instead of at every character. Same matches: that context character is never
#   the last one of an earlier match (a quote, or the space that ends a clitic's match), so
#   consuming it or looking behind at it finds the same non-overlapping matches, and the
#   replacement puts it back where it was.
NLTK_RULES: list[Rule] = [
    _same("starting", "([«“‘„]|[`]+)", re.U, r" \1 ", "«“‘„`"),
    Rule("starting", r"^\"", 0, r"``", r"(?<=\x00)\"", r"``", '"'),
    _same("starting", r"(``)", 0, r" \1 ", "`"),
    Rule("starting", r"([ \(\[{<])(\"|\'{2})", 0, r"\1 `` ", r"(?<=[ \(\[{<])(?:\"|\'{2})", r" `` ", "\"'"),
    _same("starting", r"(?i)(?<!\w)(\')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)", re.U, r"\1 ", "'"),
    Rule("punctuation", r'([^\.])(\.)([\]\)}>"\'' "»”’ " r"]*+)\s*$", re.U, r"\1 \2 \3 ",
         r'([^\.\x00])(\.)([\]\)}>"\'' "»”’ " r"]*+)\s*(?=\n?\x00)", r"\1 \2 \3 ", "."),
    Rule("punctuation", r"([:,])([^\d])", 0, r" \1 \2", r"([:,])([^\d\x00])", r" \1 \2", ":,"),
    Rule("punctuation", r"([:,])$", 0, r" \1 ", r"([:,])(?=\n?\x00)", r" \1 ", ":,"),
    _same("punctuation", r"\.{2,}", re.U, r" \g<0> ", "."),
    _same("punctuation", r"[;@#$%&]", 0, r" \g<0> ", ";@#$%&"),
    _same("punctuation", r"[\u2012-\u2015]", re.U, r" \g<0> ", "\u2012\u2013\u2014\u2015"),
    Rule("punctuation", r'([^\.])(\.)([\]\)}>"\']*)\s*$', 0, r"\1 \2\3 ",
         r'([^\.\x00])(\.)([\]\)}>"\']*)\s*(?=\n?\x00)', r"\1 \2\3 ", "."),
    _same("punctuation", r"[?!]", 0, r" \g<0> ", "?!"),
    Rule("punctuation", r"([^'])' ", 0, r"\1 ' ", r"([^'\x00])' ", r"\1 ' ", "'"),
    _same("punctuation", r"[*]", re.U, r" \g<0> ", "*"),
    _same("parens", r"[\]\[\(\)\{\}\<\>]", 0, r" \g<0> ", "[](){}<>"),
    _same("dashes", r"--", 0, r" -- ", "-"),
    _same("pad", "", 0, "", ""),
    _same("ending", "([»”’])", re.U, r" \1 ", "»”’"),
    _same("ending", r"''", 0, " '' ", "'"),
    _same("ending", r'"', 0, " '' ", '"'),
    _same("ending", r"\s+", 0, " ", OTHER_WHITESPACE),
    Rule("ending", r"([^' ])('[sS]|'[mM]|'[dD]|') ", 0, r"\1 \2 ", r"([^' \x00])('[sS]|'[mM]|'[dD]|') ", r"\1 \2 ", "'"),
    Rule("ending", r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", 0, r"\1 \2 ",
         r"(?<=[^' \x00])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", r" \1 ", "'"),
    *(_same("re", pattern, 0, r" \1 \2 ", "") for pattern in (
        r"(?i)\b(can)(?#X)(not)\b",
        r"(?i)\b(d)(?#X)('ye)\b",
        r"(?i)\b(gim)(?#X)(me)\b",
        r"(?i)\b(gon)(?#X)(na)\b",
        r"(?i)\b(got)(?#X)(ta)\b",
        r"(?i)\b(lem)(?#X)(me)\b",
        r"(?i)\b(more)(?#X)('n)\b",
        r"(?i)\b(wan)(?#X)(na)(?=\s)",
        r"(?i) ('t)(?#X)(is)\b",
        r"(?i) ('t)(?#X)(was)\b",
    )),
]


# What each contraction pattern spells, and the only characters beyond ASCII that stdlib re's (?i) matches to
# one of their letters (İ and ı to i, ſ to s; tests/test_text_path.py checks both against re itself).
CONTRACTION_WORDS = ("cannot", "d'ye", "gimme", "gonna", "gotta", "lemme", "more'n", "wanna", "'tis", "'twas")
CASE_EXOTIC = "\u0130\u0131\u017f"


class _Chain:
    """NLTK_RULES compiled: the chunk-wide substitutions, then the contractions where one may apply."""

    def __init__(self) -> None:
        self.steps = [(rule.stage == "pad", regex.compile(rule.ours, rule.flags) if rule.ours else None, rule.repl,
                       frozenset(rule.needs)) for rule in NLTK_RULES if rule.stage != "re"]
        self.contractions = [(re.compile(rule.ours, rule.flags), rule.repl) for rule in NLTK_RULES if rule.stage == "re"]

    def run(self, text: str) -> str:
        """`text`: sentences between SEPs, SEP at both ends."""
        short = len(text) < 1000  # one set lookup per character beats one scan per needed character
        for pad, pattern, repl, needs in self.steps:
            if pad:
                text = text.replace(SEP, f" {SEP} ")
            elif not needs or (not needs.isdisjoint(text) if short else any(c in text for c in needs)):
                text = pattern.sub(repl, text)
        return self._contract(text)

    def _contract(self, text: str) -> str:
        """NLTK's contraction substitutions, one after another, over the sentences that spell one of
        CONTRACTION_WORDS in any case: no other sentence can match any of them, so none changes."""
        lowered = text.lower()
        if len(lowered) != len(text) or any(c in text for c in CASE_EXOTIC):  # all of them, over the whole chunk
            for pattern, repl in self.contractions:
                text = pattern.sub(repl, text)
            return text
        starts = set()
        for word in CONTRACTION_WORDS:
            at = lowered.find(word)
            while at >= 0:
                starts.add(text.rfind(SEP, 0, at))
                at = lowered.find(word, at + 1)
        if not starts:
            return text
        parts, done = [], 0
        for start in sorted(starts):
            end = text.index(SEP, start + 1)
            sentence = text[start + 1 : end]  # NLTK's text at this point: " " + ... + " "
            for pattern, repl in self.contractions:
                sentence = pattern.sub(repl, sentence)
            parts += [text[done : start + 1], sentence]
            done = end
        parts.append(text[done:])
        return "".join(parts)


@cache
def _chain() -> _Chain:
    return _Chain()


def _run_chunk(texts: Sequence[str]) -> tuple[str, list[int]]:
    """NLTK's chain over `texts` at once: SEP, then each text's tokens and a SEP, spaces between. A text
    that holds SEP itself goes in empty; its index comes back, for NLTK to tokenise it."""
    joined = SEP.join(texts)
    odd = []
    if joined.count(SEP) != max(len(texts) - 1, 0):
        odd = [i for i, t in enumerate(texts) if SEP in t]
        joined = SEP.join("" if SEP in t else t for t in texts)
    return _chain().run(SEP + joined + SEP), odd


def _nltk_tokenize(text: str) -> list[str]:
    import nltk

    return nltk.word_tokenize(text, preserve_line=True)


def _chunks(texts: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(texts), CHUNK):
        yield texts[start : start + CHUNK]


def tokenize_many(texts: Sequence[str]) -> list[list[str]]:
    """NLTK's `word_tokenize(text, preserve_line=True)` of each text, computed a chunk at a time."""
    out: list[list[str]] = []
    for chunk in _chunks(texts):
        done, odd = _run_chunk(chunk)
        lists = [sentence.split() for sentence in done.split(SEP)[1:-1]]
        for i in odd:
            lists[i] = _nltk_tokenize(chunk[i])
        out.extend(lists)
    return out


def tokenize(text: str) -> list[str]:
    """NLTK's `word_tokenize(text, preserve_line=True)` of one text."""
    return tokenize_many([text])[0]


class WordIds:
    """A vocabulary's word -> id dict, and the same with SEP as -1 (what a joined chunk is looked up in).

    Args:
        stoi: word -> id; never changed afterwards.
        unk: the id of a word not in it (and of an empty sentence's one step).
    """

    def __init__(self, stoi: dict[str, int], unk: int = 1) -> None:
        self.stoi, self.unk = stoi, unk
        self.with_sep = {**stoi, SEP: -1}  # no token of a chunk that goes the joined way is SEP but ours


def encode_many(texts: Sequence[str], words: WordIds, max_tokens: int) -> TokenIds:
    """Vocabulary ids of each text's NLTK tokens, truncated to `max_tokens`; an empty text gets [unk].

    Equal to `TokenIds.from_lists([Vocab.encode(tokenize(t), max_tokens) for t in texts])`, without a
    Python list per sentence.
    """
    flats, lengths = [], []
    for chunk in _chunks(texts):
        done, odd = _run_chunk(chunk)
        tokens = done.split()  # SEP, the first sentence's tokens, SEP, ..., SEP
        ids = np.fromiter(map(words.with_sep.get, tokens, repeat(words.unk)), dtype=np.int32, count=len(tokens))
        seps = np.flatnonzero(ids == -1)
        flat, kept = _truncate(np.append(ids, np.int32(words.unk)), seps[:-1] + 1, np.diff(seps) - 1, max_tokens, len(ids))
        if odd:
            flat, kept = _replace(flat, kept, {i: _nltk_tokenize(chunk[i]) for i in odd}, words, max_tokens)
        flats.append(flat)
        lengths.append(kept)
    kept_all = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    offsets = np.zeros(len(kept_all) + 1, dtype=np.int64)
    np.cumsum(kept_all, out=offsets[1:])
    return TokenIds(np.concatenate(flats) if flats else np.zeros(0, dtype=np.int32), offsets)


def _truncate(ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray, max_tokens: int,
              unk_at: int) -> tuple[np.ndarray, np.ndarray]:
    """Each sentence's first `max_tokens` ids (starting at `starts` in `ids`), flat, and their counts; an
    empty sentence takes the one id at `unk_at`."""
    kept = np.minimum(lengths, max_tokens)
    starts = np.where(kept == 0, unk_at, starts)
    kept = np.maximum(kept, 1)
    first = np.cumsum(kept) - kept  # where each sentence starts in the output
    gather = np.repeat(starts - first, kept) + np.arange(int(kept.sum()))
    return ids[gather], kept


def _replace(flat: np.ndarray, kept: np.ndarray, tokens: dict[int, list[str]], words: WordIds,
             max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """A chunk's (flat ids, counts) with the sentences `tokens` names encoded from those tokens instead."""
    pieces = np.split(flat, np.cumsum(kept)[:-1])
    for i, toks in tokens.items():
        pieces[i] = np.array([words.stoi.get(t, words.unk) for t in toks[:max_tokens]] or [words.unk], dtype=np.int32)
    return np.concatenate(pieces), np.array([len(p) for p in pieces], dtype=kept.dtype)
