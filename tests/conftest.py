"""Shared fixtures: the real data folder, NLTK's tagger on the path, registered plugins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from harness.core import plugins
from harness.data.augment import use_nltk_data
from harness.data.tasks import REPO_ROOT


def pytest_configure(config: pytest.Config) -> None:
    """Tests named with `-k` run whatever their tier: the default `-m 'not slow'` (pyproject.toml) applies
    only when neither -k nor -m was given, so `pytest -k external` selects the slow end-to-end tests too."""
    args = config.invocation_params.args
    named = any(a == "-k" or a.startswith("-k") for a in args)
    marked = any(a == "-m" or (a.startswith("-m") and not a.startswith("-m=") and len(a) > 2) for a in args)
    if named and not marked:
        config.option.markexpr = ""


@pytest.fixture(scope="session", autouse=True)
def load_plugins() -> None:
    """Register every task, teacher and student plugin once per session."""
    plugins.load_plugins()


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared data folder the code finds by default (../shared/data beside the repo)."""
    root = REPO_ROOT.parent / "shared" / "data"
    if not (root / "SST-2" / "train.tsv").is_file():
        pytest.skip(f"real data not found under {root}")
    return root


@pytest.fixture(scope="session")
def nltk_tagger(data_root: Path) -> None:
    """Put the shared NLTK POS tagger on NLTK's data path."""
    use_nltk_data([data_root])


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch (and so ONNX Runtime) thread for a module: bit-identical reruns, and fast on 2 cores
    shared with other jobs (2 threads there run far slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def hub_not_yet_tried() -> Iterator[None]:
    """Each test starts without the process's memory of an unreachable hub (tasks.load_task)."""
    from harness.data import tasks

    tasks._HUB_UNREACHABLE.clear()
    yield
    tasks._HUB_UNREACHABLE.clear()
