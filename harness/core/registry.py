"""A small name -> factory registry with did-you-mean errors."""

from __future__ import annotations

import dataclasses
import difflib
import sys
from collections.abc import Callable
from typing import Generic, TypeVar

from harness.core.errors import HarnessError

T = TypeVar("T")
LOADING: list[str] = []  # the plugin module being imported (harness.core.plugins.load), which registrations record


class Registry(Generic[T]):
    """Maps names to registered objects (factories, specs).

    Args:
        kind: what the registry holds, used in error messages ("student", "task", ...).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._origins: dict[str, str] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its target under `name`; a name may be registered once."""

        def add(item: T) -> T:
            self.add(name, item)
            return item

        return add

    def add(self, name: str, item: T) -> None:
        """Register `item` as `name`; where it came from is recorded (`origin`) for `harness ls`.

        Raises:
            HarnessError: the name is taken, naming both origins.
        """
        origin = LOADING[-1] if LOADING else f"{caller_module()} (imported directly)"
        if name in self._items:
            raise HarnessError(f"{self.kind} {name!r} is registered twice: by {self._origins[name]} and by {origin}")
        self._items[name] = item
        self._origins[name] = origin

    def origin(self, name: str) -> str:
        """Where `name` was registered: the plugin module and how it was found (harness/core/plugins.py)."""
        self.get(name)
        return self._origins[name]

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


def caller_module() -> str:
    """The module that called into this one (the registering plugin, when it was imported directly)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    return frame.f_globals.get("__name__", "?") if frame is not None else "?"


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
    """What a student plugin registers (harness/core/protocols.py says what the engine asks of each part).

    Args:
        arch: the model family, stored with saved models (e.g. the name of its file).
        build: (settings, vocab_size, embed_dim, num_labels) -> a torch module that follows
            `protocols.StudentModel`.
        settings: the architecture's own frozen dataclass of settings (sizes, dropout, ...). A run's
            `student.<field>` values that are its fields reach it; saved models record it whole.
        distill: train on teacher logits (True) or on gold labels only (False).
        transfer: train on the augmented transfer set (True) or the original training set.
        overrides: settings this variant fixes, of its architecture or of training (tiny variants).
        columns: text columns the model reads: 1 for single sentences, 2 for sentence pairs.
        version: bump it when the plugin's code changes what it trains: it enters the student stage's
            cache key (when not 0), so older cached students of it are not reused.
    """

    def __init__(self, arch: str, build: Callable, settings: type, distill: bool, transfer: bool,
                 overrides: dict | None = None, columns: int = 1, version: int = 0) -> None:
        if not (dataclasses.is_dataclass(settings) and isinstance(settings, type)):
            raise TypeError(f"StudentSpec {arch!r}: settings must be a dataclass type, got {settings!r}")
        self.arch = arch
        self.build = build
        self.settings = settings
        self.distill = distill
        self.transfer = transfer
        self.overrides = overrides or {}
        self.columns = columns
        self.version = version


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
