"""Runs the command line the way a user does, for the CLI and pipeline tests."""

from __future__ import annotations

import os
import subprocess
import sys

from harness.data.tasks import REPO_ROOT

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def harness(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m harness ARGS` from the repository root, offline, with the default data location."""
    env = {**os.environ, **OFFLINE}
    env.pop("HARNESS_DATA", None)
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
