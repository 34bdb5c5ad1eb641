"""The slow tier's shared start for its real-teacher tests: CI's smoke teacher and transfer set for SST-2, computed
once per session (conftest.smoke_sst2_cache) and copied into each test's own cache (`seed_cache`)."""

from __future__ import annotations

import shutil
from pathlib import Path

# CI's smoke preset for SST-2's label-only student, untimed: its teacher (MiniLM, 3 epochs on 1,500 sentences),
# transfer set and labels are what tests/test_gate_smoke.py and tests/test_plugins.py's README example start from.
SMOKE_SST2 = ["run", "--suite", "glue", "--preset", "smoke", "--tasks", "sst2", "--students", "bilstm", "--set", "ablations=",
              "--set", "measure.enabled=false"]
UPSTREAM = ("teacher", "augment", "label")  # the stages a test copies: its own students train in its own cache


def seed_cache(source: Path, cache: Path) -> None:
    """Copy `source`'s committed upstream entries (teacher, transfer set, labels) into `cache`."""
    for stage in UPSTREAM:
        for entry in (source / stage).iterdir():
            if entry.is_dir() and not entry.name.endswith(".partial"):
                shutil.copytree(entry, cache / stage / entry.name, dirs_exist_ok=True)
