"""The name -> plugin registry: did-you-mean errors, single registration, shipped names."""

from __future__ import annotations

import pytest

from harness.core.errors import HarnessError
from harness.core.registry import STUDENTS, TASKS, TEACHERS, Registry


def test_unknown_name_suggests_closest_and_lists_known() -> None:
    """A typo names the closest match and every registered name."""
    with pytest.raises(HarnessError) as err:
        STUDENTS.get("bilstn")
    msg = str(err.value)
    assert "did you mean 'bilstm'" in msg
    assert all(name in msg for name in ("bilstm", "bilstm_soft", "bilstm_tiny"))


def test_unknown_name_without_close_match() -> None:
    """A name like nothing registered still lists the known names, without a suggestion."""
    reg: Registry = Registry("widget")
    reg.add("alpha", 1)
    with pytest.raises(HarnessError, match=r"unknown widget 'zzzzzz' \(known: alpha\)"):
        reg.get("zzzzzz")


def test_duplicate_registration_fails() -> None:
    """A name may be registered once, by add or by the decorator."""
    reg: Registry = Registry("widget")
    reg.register("a")(object())
    with pytest.raises(HarnessError, match="widget 'a' is registered twice: by test_registry .* and by test_registry"):
        reg.add("a", object())
    with pytest.raises(HarnessError):
        reg.register("a")(object())


def test_shipped_plugins_are_registered() -> None:
    """The plugin list registers the students, teachers and tasks tests and suites rely on."""
    assert {"bilstm", "bilstm_soft", "bilstm_tiny"} <= set(STUDENTS.names())
    assert {"hf", "hf_tiny"} <= set(TEACHERS.names())
    assert "sst2" in TASKS
