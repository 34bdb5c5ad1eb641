"""Re-take the golden files that pin the rendering and the stage code (tests/golden_files.py says why a test never does).

    .venv/bin/python tests/retake_golden.py reports    # reports/<pinned>/report.md from the results.json beside it
    .venv/bin/python tests/retake_golden.py compare    # tests/golden/compare.md from tests/golden/run_a and run_b
    .venv/bin/python tests/retake_golden.py stages [--reason TEXT]   # tests/golden/stage_sources.json

`stages` pins each stage's VERSION and the sha256 of its code. A stage whose code changed needs its VERSION bumped
in harness/engine/stages.py (its cache entries are then recomputed), or `--reason`: why its outputs are the same
(tests/test_stage_versions.py reads each reason). Review `git diff` after each.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_files import GOLDEN, PINNED, REPORTS  # noqa: E402


def reports() -> None:
    from harness.results.report import render
    for folder in PINNED:
        path = REPORTS / folder / "report.md"
        text = render(json.loads((REPORTS / folder / "results.json").read_text()))
        state = "unchanged" if path.is_file() and path.read_text() == text else "re-rendered"
        path.write_text(text)
        print(f"{path.relative_to(REPORTS.parent)}: {state}")


def compare() -> None:
    from harness.results.compare import compare as compare_runs
    path = GOLDEN / "compare.md"
    text = compare_runs([GOLDEN / "run_a", GOLDEN / "run_b"]) + "\n"
    state = "unchanged" if path.read_text() == text else "re-written"
    path.write_text(text)
    print(f"{path.relative_to(GOLDEN.parent.parent)}: {state}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("reports", "compare", "stages"))
    parser.add_argument("--reason", default="", help="stages: why a stage's code changed with its outputs unchanged "
                                                      "(needed for each stage re-pinned without a VERSION bump)")
    args = parser.parse_args(argv)
    if args.reason and args.what != "stages":
        parser.error("--reason goes with `stages` only")
    if args.what == "reports":
        reports()
    elif args.what == "compare":
        compare()
    else:
        from test_stage_versions import update
        try:
            update(args.reason)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
