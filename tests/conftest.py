"""Shared fixtures: the real data folder, NLTK's tagger on the path, registered plugins."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from smoke_cache import SMOKE_SST2

from harness.core import plugins
from harness.data.augment import use_nltk_data
from harness.data.tasks import REPO_ROOT

pytest_plugins = ["skip_list"]  # --expected-skips FILE: the run fails when its skips differ from FILE's (.ci/run)


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


@pytest.fixture(scope="session")
def smoke_sst2_cache(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """A cache holding SMOKE_SST2's stages (tests/smoke_cache.py), computed once per test session: under pytest-xdist
    once for all workers (it lives beside their temp folders, and the cache's entry locks make a second worker
    wait for the first's entries and reuse them). `$KD_HARNESS_TEST_CACHE` names another cache to fill and read
    instead (.ci/run: its smoke run's, which holds them already). Tests copy from it (`seed_cache`), never write to it."""
    from harness import cli

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    cache = Path(os.environ.get("KD_HARNESS_TEST_CACHE") or shared / "smoke-sst2-cache")
    assert cli.main([*SMOKE_SST2, "--out", str(tmp_path_factory.mktemp("smoke-sst2")), "--cache-dir", str(cache)]) == 0
    return cache
