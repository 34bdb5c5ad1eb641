"""Split: one split of a task's examples held in memory as plain columns (re-exported by harness.data.tasks);
and the selection split carved from a training split (`selection_split`)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.core.errors import HarnessError

SELECTION_RULE = "the examples with the smallest sha256('selection:' + text columns joined by U+001F)"
TREE_RULE = ("whole trees: the sentences (examples inside no other) with the smallest sha256('selection:' + text), "
             "each with every example inside it and inside no sentence left to train on")


@dataclass
class Split:
    """One split held in memory as plain columns (small: at most a few hundred thousand rows).

    Attributes:
        texts: one tuple of strings per example (one string, or two for pairs).
        labels: class indices (float scores for a regression task), or None when the file has no labels
            (GLUE test sets).
        source: where it came from, for messages and results.
        ids: the task's example ids when its files have them (not part of the fingerprint).
    """

    texts: list[tuple[str, ...]]
    labels: list[int] | list[float] | None
    source: str
    ids: list[str] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int) -> Split:
        """The first n examples (all when n is 0)."""
        if n <= 0 or n >= len(self):
            return self
        return self.take(range(n), f"{self.source} (first {n})")

    def take(self, idx: Sequence[int], source: str) -> Split:
        """The examples at `idx`, in that order, labelled with `source`."""
        def pick(xs: list | None) -> list | None:
            return [xs[i] for i in idx] if xs is not None else None

        return Split(pick(self.texts), pick(self.labels), source, pick(self.ids))

    def duplicates(self) -> int:
        """How many examples repeat an earlier one's texts and label: legal (GLUE's SST-2 train has 366),
        counted for the results. Computed from the rows held, so it follows `head` and `take`."""
        rows = zip(self.texts, self.labels) if self.labels is not None else self.texts
        return len(self) - len(set(rows))

    def inside(self, other: Split) -> list[bool] | None:
        """Which of these examples appear word for word inside an example of `other` (at word boundaries;
        single texts only, None for pairs). SST-2's training file holds every labelled phrase of its trees, so
        90% of a selection split drawn from it (3,028 of 3,367) are phrases of sentences still trained on, and
        score high; 2 of dev's 872 sentences are."""
        if any(len(t) != 1 for t in self.texts[:1] + other.texts[:1]):
            return None
        haystack = "\n".join(f" {t[0].strip()} " for t in other.texts)
        return [f" {t[0].strip()} " in haystack for t in self.texts]

    def fingerprint(self) -> str:
        """A hash of the content, used in cache keys."""
        h = hashlib.sha256()
        for i, t in enumerate(self.texts):
            h.update("\x1f".join(t).encode())
            h.update(b"\x1e" + (str(self.labels[i]) if self.labels is not None else "").encode())
        return h.hexdigest()[:20]


def selection_rank(texts: tuple[str, ...]) -> int:
    """An example's place in the selection order: the first 8 bytes of sha256 of its text(s); the same on
    every machine and process (Python's own hash() is salted per process)."""
    digest = hashlib.sha256(("selection:" + "\x1f".join(texts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def selection_split(train: Split, fraction: float, limit: int, unit: str = "example") -> tuple[Split, Split]:
    """(selection, rest): the selection split is the `round(fraction * len(train))` examples, at most
    `limit`, of smallest `selection_rank`, in file order; rest is every other example, in file order.
    Examples with the same text(s) rank alike and land on one side together (so one fewer may be
    taken), so no sentence is both trained on and selected on. `unit="tree"` holds out whole trees
    instead (`tree_selection_split`)."""
    want = min(max(1, round(fraction * len(train))), limit, len(train) - 1)
    if unit == "tree":
        return tree_selection_split(train, want)
    ranks = np.fromiter((selection_rank(t) for t in train.texts), dtype=np.uint64, count=len(train))
    cut = np.sort(ranks)[want]  # the first rank left out: everything strictly below it is selected
    chosen = ranks < cut
    return (train.take(np.flatnonzero(chosen), f"{train.source} (selection split)"),
            train.take(np.flatnonzero(~chosen), f"{train.source} (without the selection split)"))


def trees(texts: Sequence[str]) -> tuple[list[int], list[list[int]]]:
    """(roots, roots_of): the roots are the examples inside no other example (whole words, as `Split.inside`
    compares; of repeated texts the first in file order), by decreasing length; `roots_of[i]` are the indices
    into `roots` of every root example i lies inside (its own, for a root). Every phrase of every root is
    looked up once, so SST-2's 67,349 rows take a few seconds."""
    words = [t.split() for t in texts]
    where: dict[str, list[int]] = {}
    for i, w in enumerate(words):
        where.setdefault(" ".join(w), []).append(i)
    roots: list[int] = []
    roots_of: list[list[int]] = [[] for _ in texts]
    for i in sorted(range(len(texts)), key=lambda j: -len(words[j])):  # stable: file order among equal lengths
        if roots_of[i]:
            continue
        w, r = words[i], len(roots)
        roots.append(i)
        for phrase in {" ".join(w[a:b]) for a in range(len(w)) for b in range(a + 1, len(w) + 1)}:
            for j in where.get(phrase, ()):
                roots_of[j].append(r)
    return roots, roots_of


def tree_selection_split(train: Split, want: int) -> tuple[Split, Split]:
    """(selection, rest) holding out whole trees, for a training file that holds every phrase of its
    sentences (GLUE's SST-2): sentences are taken in `selection_rank` order, each with the examples inside
    it that lie inside no sentence still trained on, until one more would pass `want` examples (one
    sentence at least). No held-out example is then inside a training example, as no dev sentence is.

    Raises:
        HarnessError: pair examples (a tree is one sentence's), or nothing would be left to train on.
    """
    if any(len(t) != 1 for t in train.texts[:1]):
        raise HarnessError(f"{train.source}: selection.unit=tree needs single-sentence examples; these are pairs "
                           "(use selection.unit=example)")
    roots, roots_of = trees([t[0] for t in train.texts])
    members: list[list[int]] = [[] for _ in roots]
    for i, rs in enumerate(roots_of):
        for r in rs:
            members[r].append(i)
    left = np.array([len(rs) for rs in roots_of])  # roots still trained on, per example
    chosen = np.zeros(len(train), dtype=bool)
    held = 0
    for r in sorted(range(len(roots)), key=lambda r: selection_rank(train.texts[roots[r]])):
        new = [i for i in members[r] if left[i] == 1]
        if held and held + len(new) > want:
            break
        left[members[r]] -= 1
        chosen[new] = True
        held += len(new)
    if chosen.all():
        raise HarnessError(f"{train.source}: selection.unit=tree would hold out every example ({len(roots)} tree(s)); "
                           "use selection.unit=example")
    return (train.take(np.flatnonzero(chosen), f"{train.source} (selection split, whole trees)"),
            train.take(np.flatnonzero(~chosen), f"{train.source} (without the selection split)"))
