"""A committed list of the tests each tier skips: a run of a whole tier fails when a test starts skipping, for a new
reason or an old one, or stops, so a skip nobody reads cannot hide a test. Every run prints its skips (`-rs`,
pyproject.toml).

The whole fast tier (`pytest` with no test named) is checked against tests/skips/fast.txt, the whole slow tier
(`pytest -m slow`) against tests/skips/slow.txt; `--expected-skips FILE` checks any run against FILE, and
`--write-skips` writes the run's list instead (then review and commit it). A file holds one `node id | reason`
line per skipped test (line numbers left out: they move with every edit). A line that starts with `optional: ` is a
test that other machines run (a GPU, an optional package installed): it may run, but if it skips, its reason must
be the listed one. Lines starting with # are comments.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def reason_of(report: pytest.TestReport) -> str:
    """A skip's reason without pytest's `Skipped: ` prefix."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ").strip()


OPTIONAL = "optional: "
# a skip for want of something other machines have: its test may run there (written as optional)
MACHINE_SPECIFIC = ("needs CUDA", "are not installed")
LISTS = Path(__file__).resolve().parent / "skips"


def read(path: Path) -> tuple[list[str], list[str]]:
    """The skips `path` expects: (those every run must have, those a run may have)."""
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return (sorted(line for line in lines if not line.startswith(OPTIONAL)),
            sorted(line.removeprefix(OPTIONAL) for line in lines if line.startswith(OPTIONAL)))


def problems(found: list[str], required: list[str], optional: list[str] = ()) -> list[str]:
    """What differs between the run's skips and the committed list, one line each."""
    return ([f"new skip: {line}" for line in sorted(set(found) - set(required) - set(optional))]
            + [f"no longer skipped (or not run): {line}" for line in sorted(set(required) - set(found))])


class SkipList:
    """The pytest plugin behind --expected-skips: collects each skipped test and compares at the session's end."""

    def __init__(self, path: Path, write: bool) -> None:
        self.path, self.write, self.found, self.message = path, write, [], ""

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self.found.append(f"{report.nodeid} | {reason_of(report)}")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        found = sorted(self.found)
        if self.write:
            self.path.write_text(f"# skipped by this tier: written by pytest --expected-skips {self.path.name} --write-skips\n"
                                 + "".join(f"{OPTIONAL if any(w in line for w in MACHINE_SPECIFIC) else ''}{line}\n"
                                           for line in found))
            self.message = f"wrote {len(found)} skip(s) to {self.path}"
            return
        diff = problems(found, *read(self.path))
        if diff:
            self.message = (f"the skipped tests differ from {self.path} ({len(found)} skipped): " + "; ".join(diff)
                            + ". If that is meant, re-take the list with --write-skips and commit it.")
            if session.exitstatus == 0:
                session.exitstatus = 1
        else:
            self.message = f"skips as committed in {self.path}: {len(found)}"

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.message:
            terminalreporter.write_line(self.message, red="differ" in self.message, bold=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--expected-skips", metavar="FILE", help="fail when the tests skipped differ from FILE's list "
                     "(node id | reason per line; .ci/run: tests/skips/fast.txt, tests/skips/slow.txt)")
    parser.addoption("--write-skips", action="store_true", help="with --expected-skips: write the run's skips into FILE")


def tier_list(config: pytest.Config) -> Path | None:
    """The committed list for a run of a whole tier: no test named (pytest's testpaths), no -k, and the fast tier's
    default marker expression or `slow`."""
    if config.args_source != pytest.Config.ArgsSource.TESTPATHS or config.option.keyword:
        return None
    return {"not slow": LISTS / "fast.txt", "slow": LISTS / "slow.txt"}.get(config.option.markexpr.strip())


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--expected-skips") or tier_list(config)
    if path and not hasattr(config, "workerinput"):  # under xdist, the controller sees every worker's reports
        if not config.getoption("--write-skips") and not Path(path).is_file():
            raise pytest.UsageError(f"--expected-skips {path}: no such file (write it from a run with --write-skips)")
        config.pluginmanager.register(SkipList(Path(path), config.getoption("--write-skips")), "skip-list")
