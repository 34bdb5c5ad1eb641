"""Golden files are re-taken by a script of their own, never by a test run.

A test that writes its golden file when a variable is set and then compares against what it just wrote
passes by construction, and nothing stops the variable from being set in CI or tox. So the golden tests
only read, and fail when any re-take switch is set; `tests/retake_golden.py` writes the files:

    .venv/bin/python tests/retake_golden.py reports    # the pinned reports (reports/*/report.md)
    .venv/bin/python tests/retake_golden.py compare    # tests/golden/compare.md
    .venv/bin/python tests/retake_golden.py stages --reason "why the code changed but not its outputs"

then review `git diff`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
GOLDEN = ROOT / "tests" / "golden"
RETAKE = ".venv/bin/python tests/retake_golden.py"

# A variable that asks a test run to re-take its snapshots, in this project's spelling (UPDATE_GOLDEN) or another
# tool's (pytest-golden's --update-goldens, syrupy's --snapshot-update, REGEN/BLESS/ACCEPT conventions).
SWITCH = re.compile(r"(UPDATE|REGEN|REGENERATE|RETAKE|BLESS|ACCEPT|OVERWRITE|REFRESH).*(GOLDEN|SNAPSHOT|EXPECT)|"
                    r"(GOLDEN|SNAPSHOT|EXPECT).*(UPDATE|REGEN|REGENERATE|RETAKE|BLESS|ACCEPT|OVERWRITE|REFRESH)",
                    re.IGNORECASE)

# Reports rendered by the current code: they pin its rendering on real runs (DESIGN, Reports: golden-file tests). The
# others under reports/ were rendered by older versions and are kept as written.
PINNED = ("glue-quick", "qqp-large-protocol", "sst2-paper-protocol", "sst2-paper-protocol/seeds",
          "sst2-paper-protocol/whole-word", "sst2-paper-protocol/cpu/average", "sst2-paper-protocol/cpu/labels",
          "sst2-paper-protocol/cpu/seeds", "sst2-paper-protocol/cpu/students", "sst2-paper-protocol/cpu/tree",
          "zoo-quick", "zoo-quick/cola-int8", "zoo-quick/cola-int8-seeds", "zoo-quick/sst2-fold", "zoo-quick/sst2-retime",
          "zoo-quick/sst2-seeds")


def retake_switches(environ: dict[str, str] | None = None) -> list[str]:
    """The set (non-empty) environment variables that ask for golden files to be re-taken."""
    environ = os.environ if environ is None else environ
    return sorted(name for name, value in environ.items() if value and SWITCH.search(name))


def refuse_retake_switches() -> None:
    """Fail the calling golden test when a re-take switch is set: it would otherwise be read as a request to
    overwrite the golden file, and a test that compares a file with itself cannot fail."""
    found = retake_switches()
    if found:
        pytest.fail(f"{', '.join(found)} is set: golden tests never write their files; unset it and re-take them "
                    f"with `{RETAKE} reports|compare|stages`, then review `git diff`")
