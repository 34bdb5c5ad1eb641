"""A golden test fails, and writes nothing, when a re-take switch is set: golden files change only through
tests/retake_golden.py, so a test can never compare a file with what it has just written."""

from __future__ import annotations

import hashlib

import pytest
import test_compare
import test_glue_table
import test_stage_versions
from golden_files import GOLDEN, PINNED, REPORTS, retake_switches


def digest() -> str:
    files = [GOLDEN / "compare.md", GOLDEN / "stage_sources.json", *(REPORTS / f / "report.md" for f in PINNED)]
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


def test_the_switches_are_seen() -> None:
    """This project's UPDATE_GOLDEN and other tools' spellings count when set; unrelated or empty variables do not."""
    assert retake_switches({"UPDATE_GOLDEN": "1", "SNAPSHOT_UPDATE": "yes", "REGEN_GOLDENS": "1", "CI": "true",
                            "GOLDEN_RATIO": "1.6", "UPDATE_EXPECTED": "1", "PATH": "/bin"}) == \
        ["REGEN_GOLDENS", "SNAPSHOT_UPDATE", "UPDATE_EXPECTED", "UPDATE_GOLDEN"]
    assert retake_switches({"UPDATE_GOLDEN": ""}) == []


@pytest.mark.parametrize("switch", ["UPDATE_GOLDEN", "SNAPSHOT_UPDATE"])
def test_a_switch_fails_every_golden_test_and_writes_nothing(switch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    before = digest()
    monkeypatch.setenv(switch, "1")
    golden_tests = [test_compare.test_compare_matches_golden,
                    lambda: test_glue_table.test_pinned_reports_are_what_the_renderer_writes(PINNED[0]),
                    test_stage_versions.test_each_pin_is_its_versions_or_a_stated_reason]
    for golden_test in golden_tests:
        with pytest.raises(pytest.fail.Exception, match=f"{switch} is set: golden tests never write"):
            golden_test()
    assert digest() == before


def test_a_repin_needs_a_bump_or_a_reason() -> None:
    """Changed code under the same VERSION is refused without a sentence of reason and kept with one; a bump
    starts the version's history afresh."""
    old = {"version": 2, "sha256": "a", "version_sha256": "a", "repins": []}
    with pytest.raises(ValueError, match="bump VERSIONS\\['label'\\]"):
        test_stage_versions.repinned("label", old, {"version": 2, "sha256": "b"}, "refactor")
    kept = test_stage_versions.repinned("label", old, {"version": 2, "sha256": "b"}, "moved a helper, same outputs")
    assert kept["version_sha256"] == "a" and kept["repins"] == [{"sha256": "b", "reason": "moved a helper, same outputs"}]
    bumped = test_stage_versions.repinned("label", kept, {"version": 3, "sha256": "c"}, "")
    assert bumped["version_sha256"] == "c" and bumped["repins"] == []
    assert test_stage_versions.repinned("label", kept, {"version": 2, "sha256": "b"}, "") == {"version": 2, **kept}
