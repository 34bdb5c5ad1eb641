"""Suites, presets and --set overrides are checked against the config dataclasses."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from harness.core.config import SUITES_DIR, RunConfig, load_suite, parse_set
from harness.core.errors import HarnessError
from harness.core.registry import REFERENCES, STUDENTS, TASKS, TEACHERS
from harness.core.variants import check_registered


def shipped_suites() -> list[tuple[str, str | None]]:
    """Every (suite, preset) pair of every YAML in harness/core/suites, plus each suite without a preset."""
    pairs: list[tuple[str, str | None]] = []
    for path in sorted(SUITES_DIR.glob("*.yaml")):
        presets = (yaml.safe_load(path.read_text()) or {}).get("presets") or {}
        pairs += [(path.stem, None), *((path.stem, p) for p in presets)]
    return pairs


def test_suites_are_shipped() -> None:
    """The glue suite and its smoke/quick/full presets exist."""
    assert {("glue", p) for p in (None, "smoke", "quick", "full")} <= set(shipped_suites())


@pytest.mark.parametrize(("suite", "preset"), shipped_suites())
def test_shipped_suite_loads(suite: str, preset: str | None) -> None:
    """Every shipped suite and preset validates and names only registered things."""
    cfg, info = load_suite(suite, preset)
    assert isinstance(cfg, RunConfig) and info["suite"] == suite and info["preset"] == preset
    for name in cfg.tasks:
        TASKS.get(name)
        for student in cfg.for_task(name).students:
            STUDENTS.get(student)
        check_registered(cfg.for_task(name))  # ablation variants' bases are registered and fit their changes
    for name in cfg.measure.references:
        REFERENCES.get(name)
    TEACHERS.get(cfg.teacher.name)


def test_preset_overrides_suite() -> None:
    """A preset changes only what it sets."""
    full, _ = load_suite("glue")
    smoke, _ = load_suite("glue", "smoke")
    assert (smoke.train_limit, smoke.augment.n_iter, smoke.student.arch["hidden"]) == (1500, 2, 64)
    assert smoke.augment.p_mask == full.augment.p_mask and smoke.teacher.lr == full.teacher.lr


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("student.hidden=300", {"student.hidden": 300}),
        ("augment.p_mask=0.25", {"augment.p_mask": 0.25}),
        ("student.multichannel=false", {"student.multichannel": False}),
        ("teacher.checkpoint=minilm", {"teacher.checkpoint": "minilm"}),
        ("students=bilstm,bilstm_tiny", {"students": "bilstm,bilstm_tiny"}),
        ("students=[bilstm, bilstm_tiny]", {"students": ["bilstm", "bilstm_tiny"]}),
        ("teacher.checkpoint=", {"teacher.checkpoint": ""}),
    ],
)
def test_parse_set_types(item: str, expected: dict[str, Any]) -> None:
    """Values are parsed as YAML scalars, keeping their types."""
    got = parse_set([item])
    assert got == expected
    assert [type(v) for v in got.values()] == [type(v) for v in expected.values()]


def test_parse_set_needs_key_and_value() -> None:
    """An item without '=' is an error that shows the expected form."""
    with pytest.raises(HarnessError, match="KEY=VALUE"):
        parse_set(["student.hidden"])


def test_sets_apply_and_coerce() -> None:
    """--set values reach the config; ints become floats and comma lists become tuples."""
    cfg, _ = load_suite("glue", "smoke", parse_set(["augment.p_mask=0", "students=bilstm,bilstm_tiny", "student.hidden=7"]))
    assert cfg.augment.p_mask == 0.0 and isinstance(cfg.augment.p_mask, float)
    assert cfg.students == ("bilstm", "bilstm_tiny")
    assert cfg.student.arch["hidden"] == 7


def test_unknown_key_is_named() -> None:
    """A misspelt field is an error naming it, with the closest one (a student setting: once the run is
    checked against the registered students' settings)."""
    from harness.api import configure

    with pytest.raises(HarnessError, match="hiddn'; did you mean 'hidden'"):
        configure("glue", None, overrides={"student.hiddn": 3})
    with pytest.raises(HarnessError, match="bogus"):
        load_suite("glue", None, {"bogus": 3})


@pytest.mark.parametrize(
    ("key", "value"),
    [("student.hidden", "abc"), ("student.hidden", 1.5), ("augment.p_mask", True), ("student.multichannel", "yes")],
)
def test_wrong_type_is_an_error(key: str, value: Any) -> None:
    """A value of the wrong type is an error naming the field (an architecture's, once the run is checked
    against its students' settings: harness.api.configure)."""
    from harness.api import configure

    with pytest.raises(HarnessError, match=key.split(".")[-1]):
        configure("glue", None, overrides={key: value})


@pytest.mark.parametrize(("key", "value"), [("augment.p_mask", 2), ("augment.p_mask", -0.1), ("student.alpha", 1.5)])
def test_invalid_value_is_an_error(key: str, value: float) -> None:
    """Values outside the allowed range are rejected by the dataclass."""
    with pytest.raises(HarnessError, match=key):
        load_suite("glue", None, {key: value})


def test_unknown_preset_lists_known() -> None:
    """An unknown preset names itself and the suite's presets."""
    with pytest.raises(HarnessError, match="'nope'.*smoke"):
        load_suite("glue", "nope")


def test_unknown_suite() -> None:
    """An unknown suite name is an error listing the shipped ones."""
    with pytest.raises(HarnessError, match="glue"):
        load_suite("no_such_suite")


def test_per_task_settings_layer_under_the_command_line(tmp_path) -> None:
    """A task's own settings apply to that task only; a preset's per_task adds to the suite's; --set wins."""
    suite = tmp_path / "pairs.yaml"
    suite.write_text(yaml.safe_dump({
        "tasks": ["sst2", "qqp"],
        "per_task": {"qqp": {"student": {"hidden": 300, "batch_size": 256}, "augment": {"n_iter": 10}}},
        "presets": {"quick": {"student": {"epochs": 2}, "per_task": {"qqp": {"teacher": {"train_limit": 9000}}}}},
    }))
    cfg, _ = load_suite(str(suite), "quick")
    qqp, sst2 = cfg.for_task("qqp"), cfg.for_task("sst2")
    assert (qqp.student.arch["hidden"], qqp.student.batch_size, qqp.augment.n_iter, qqp.teacher.train_limit) == \
        (300, 256, 10, 9000)
    assert qqp.student.epochs == 2 == sst2.student.epochs
    assert (sst2.student.arch.get("hidden"), sst2.augment.n_iter) == (None, 20)  # the architecture's default
    cli, _ = load_suite(str(suite), "quick", {"student.hidden": 64})
    assert cli.for_task("qqp").student.arch["hidden"] == 64 and cli.for_task("qqp").student.batch_size == 256


def test_bad_per_task_setting_is_named(tmp_path) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text(yaml.safe_dump({"per_task": {"qqp": {"student": {"hiden": 300}}}}))
    from harness.api import configure

    with pytest.raises(HarnessError, match="per_task.qqp.student.hiden: no registered student has it"):
        configure(str(suite))


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("teacher.max_length=1", "teacher.max_length=1: must be at least 8 (a [CLS] and [SEP] plus a few tokens"),
        ("teacher.weight_decay=-0.01", "teacher.weight_decay=-0.01: must be at least 0"),
        ("student.max_tokens=1", "student.max_tokens=1: must be at least 4 (a few words"),
        ("student.embed_dim=0", "student.embed_dim=0: must be at least 1"),
        ("student.lr=0", "student.lr=0.0: must be > 0"),
        ("student.rho=1", "student.rho=1.0: must be in [0, 1)"),
        ("measure.teacher_offline_n=0", "measure.teacher_offline_n=0: must be at least 1"),
        ("measure.offline_n=-1", "measure.offline_n=-1: must be at least 0 (0 = all training sentences)"),
        ("measure.warmup=-1", "measure.warmup=-1: must be at least 0"),
    ],
)
def test_meaningless_bounds_are_refused(item: str, message: str) -> None:
    """A value that makes its setting mean nothing (a teacher that sees only [CLS], a student that sees one
    word, an optimiser that never steps) is refused, naming the value and the smallest sensible one."""
    with pytest.raises(HarnessError) as err:
        load_suite("glue", "smoke", parse_set([item]))
    assert str(err.value).startswith(message), str(err.value)


def test_bounds_reach_per_task_settings_and_members(tmp_path) -> None:
    """A task's own settings and an ensemble member's are held to the same bounds; the smallest
    sensible values themselves are accepted."""
    suite = tmp_path / "short.yaml"
    suite.write_text(yaml.safe_dump({"per_task": {"qqp": {"teacher": {"max_length": 4}}}}))
    with pytest.raises(HarnessError, match=r"teacher.max_length=4: must be at least 8"):
        load_suite(str(suite))
    with pytest.raises(HarnessError, match=r"teacher.max_length=2: must be at least 8"):
        load_suite("glue", "smoke", {"teacher.members": [{}, {"max_length": 2}]})
    cfg, _ = load_suite("glue", "smoke", parse_set(["teacher.max_length=8", "student.max_tokens=4", "student.rho=0",
                                                    "measure.teacher_offline_n=1", "measure.warmup=0"]))
    assert (cfg.teacher.max_length, cfg.student.max_tokens, cfg.student.rho) == (8, 4, 0.0)


def test_seeds_per_task(tmp_path) -> None:
    """A suite may give a task its own student seeds (the others keep `seed` alone); --seeds replaces every task's;
    a bad list is an error naming the task."""
    suite = tmp_path / "seeds.yaml"
    suite.write_text(yaml.safe_dump({"tasks": ["sst2", "rte"], "per_task": {"rte": {"seeds": [13, 14, 15]}}}))
    cfg, _ = load_suite(str(suite))
    assert cfg.for_task("rte").seed_list() == (13, 14, 15) and cfg.for_task("sst2").seed_list() == (13,)
    cli, _ = load_suite(str(suite), sets={"seeds": "21,22"})
    assert cli.for_task("rte").seed_list() == (21, 22) == cli.for_task("sst2").seed_list()
    for seeds, message in (([13, 13], r"per_task rte: seeds: each seed once, got \[13, 13\]"),
                           (13, "per_task rte: seeds: expected a list, got 13"),
                           (["a"], "per_task rte: seeds: expected int, got 'a'"),
                           ([-1, 2], r"per_task rte: seeds: each seed an integer >= 0, got \[-1, 2\]")):
        suite.write_text(yaml.safe_dump({"tasks": ["rte"], "per_task": {"rte": {"seeds": seeds}}}))
        with pytest.raises(HarnessError, match=message):
            load_suite(str(suite))


def test_quick_trains_three_student_seeds_on_the_small_tasks() -> None:
    """The quick preset trains the four small tasks' students on seeds 13, 14, 15 with one teacher, so their gains are
    tested over seeds (README, Seeds, intervals and paired tests); SST-2 and QQP keep one seed, and the smoke (CI) and
    zoo presets train one seed everywhere."""
    quick, _ = load_suite("glue", "quick")
    for task in ("cola", "mrpc", "stsb", "rte"):
        assert quick.for_task(task).seed_list() == (13, 14, 15) and not quick.for_task(task).teacher.per_seed
    assert quick.for_task("sst2").seed_list() == (13,) == quick.for_task("qqp").seed_list()
    for preset in ("smoke", "zoo"):
        cfg, _ = load_suite("glue", preset)
        assert {cfg.for_task(task).seed_list() for task in cfg.tasks} == {(13,)}, preset
