"""Where students, teachers, tasks and references come from: the one place that imports plugin modules,
so that their registrations (harness/core/registry.py) run. No folder scanning.

Three sources, in this order:
1. The engine's own tasks (`ENGINE_MODULES`: GLUE's tasks and their readers).
2. Entry points of installed packages, one group per kind (`GROUPS`): this project registers its
   built-in students, teachers and references there (pyproject.toml), and any package can add its own:

       [project.entry-points."kd_harness.students"]
       bow = "my_package.bow"        # a module; importing it registers its students

3. Modules named with `--plugins a,b` or a suite's `plugins: [a, b]` (importable: installed, or on
   PYTHONPATH), loaded by `load_modules`.

Every registration records where it came from (`harness ls` shows it). An installed entry point that
fails to import is one warning line naming it, and the rest load; a module named with --plugins or in
a suite that fails to import is an error.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys

from harness.core.errors import HarnessError
from harness.core.registry import LOADING

ENGINE_MODULES = ("harness.data.tasks", "harness.data.pair_tasks", "harness.data.glue_tasks")
GROUPS = ("kd_harness.tasks", "kd_harness.teachers", "kd_harness.students", "kd_harness.references")
_loaded: set[str] = set()


def load_plugins() -> None:
    """Import the engine's tasks and every installed entry point of GROUPS, once per process."""
    for name in ENGINE_MODULES:
        _import(name, f"{name} (built in)")
    for group in GROUPS:
        for ep in sorted(importlib.metadata.entry_points(group=group), key=lambda e: (e.dist.name if e.dist else "", e.name)):
            package = ep.dist.name if ep.dist else "an unknown package"
            try:
                _import(ep.value.partition(":")[0], f"{ep.value} (entry point {group}:{ep.name} of {package})")
            except Exception as e:  # a broken third-party package must not stop the others
                print(f"warning: plugin {ep.name} ({ep.value}, entry point {group} of {package}) failed to import: "
                      f"{type(e).__name__}: {e}", file=sys.stderr, flush=True)


def load_modules(names: list[str] | tuple[str, ...], source: str) -> None:
    """Import plugin modules named by the user (`--plugins`, a suite's `plugins:`), once each.

    Raises:
        HarnessError: a module is not importable or fails while importing, naming it and `source`.
    """
    for name in names:
        try:
            _import(name, f"{name} ({source})")
        except HarnessError:
            raise
        except Exception as e:
            raise HarnessError(f"{source}: plugin module {name!r} failed to import: {type(e).__name__}: {e}") from None


def _import(module: str, origin: str) -> None:
    """Import `module`, its registrations recording `origin`; a module already imported is left alone."""
    if module in _loaded:
        return
    LOADING.append(origin)
    try:
        importlib.import_module(module)
    finally:
        LOADING.pop()
    _loaded.add(module)
