"""A small name -> factory registry with did-you-mean errors."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Generic, TypeVar

from harness.errors import HarnessError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to registered objects (factories, specs).

    Args:
        kind: what the registry holds, used in error messages ("student", "task", ...).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its target under `name`; a name may be registered once."""

        def add(item: T) -> T:
            self.add(name, item)
            return item

        return add

    def add(self, name: str, item: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item

    def get(self, name: str) -> T:
        """The item registered as `name`, or a HarnessError that suggests the closest names."""
        if name in self._items:
            return self._items[name]
        close = difflib.get_close_matches(name, self._items, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        known = ", ".join(sorted(self._items))
        raise HarnessError(f"unknown {self.kind} {name!r}{hint} (known: {known})")

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


TASKS: Registry = Registry("task")
TEACHERS: Registry = Registry("teacher")
STUDENTS: Registry = Registry("student")
# Timing-only reference architectures with random weights (speed does not depend on weight values):
# name -> ReferenceSpec. Their accuracy is only ever the literature's, marked as reported.
REFERENCES: Registry = Registry("reference model")


class TeacherPlugin:
    """What a teacher plugin registers: how to create one for a task and how to load a saved one.

    Args:
        create: (TeacherConfig, num_labels) -> teacher.
        load: (folder, max_length) -> teacher saved by `teacher.save`, tokenizing to `max_length`.
    """

    def __init__(self, create: Callable, load: Callable) -> None:
        self.create = create
        self.load = load


class StudentSpec:
    """What a student plugin registers.

    Args:
        arch: the model family, stored with saved models (`bilstm`).
        build: (StudentConfig, vocab_size, embed_dim, num_labels) -> torch module.
        distill: train on teacher logits (True) or on gold labels only (False).
        transfer: train on the augmented transfer set (True) or the original training set.
        overrides: StudentConfig fields this variant fixes (tiny variants).
        columns: text columns the model reads: 1 for single sentences, 2 for sentence pairs.
    """

    def __init__(self, arch: str, build: Callable, distill: bool, transfer: bool,
                 overrides: dict | None = None, columns: int = 1) -> None:
        self.arch = arch
        self.build = build
        self.distill = distill
        self.transfer = transfer
        self.overrides = overrides or {}
        self.columns = columns


class ReferenceSpec:
    """What a timing-only reference plugin registers.

    Args:
        build: num_labels -> a predictor with random weights. A predictor has `logits(texts,
            batch_size) -> (N, K) float32 array` (texts are tuples of strings, one per text column),
            `num_params() -> (total, excluding embedding tables)` and `to(device) -> self`.
        reported: the literature's figures for it, e.g. {"sst2": ("GLUE test, Tang et al. Table 1", 90.4)};
            shown only in "reported, not measured" columns.
        description: one line for `harness ls references` and the report.
    """

    def __init__(self, build: Callable, reported: dict | None = None, description: str = "") -> None:
        self.build = build
        self.reported = reported or {}
        self.description = description
