"""A run's config (RunConfig) and the suite/preset/--set layering that builds it.

A suite YAML names registered things and sets fields; a preset is a named set of dotted overrides
inside the suite; `--set a.b=v` overrides come last. Every key and value is checked against the
dataclasses of harness/core/settings.py: an unknown key or a wrong type is a HarnessError naming the key
and its source. The stage settings are re-exported here, so `from harness.core.config import StudentConfig` works.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.core.errors import HarnessError
from harness.core.settings import (  # noqa: F401 (re-exported)
    BACKENDS,
    EMBEDDINGS,
    KEY_IF_CHANGED,
    LOSSES,
    MERGE,
    STUDENT_MIN_TOKENS,
    TEACHER_MIN_LENGTH,
    AugmentConfig,
    MeasureConfig,
    SelectionConfig,
    StatsConfig,
    StudentConfig,
    TeacherConfig,
    TransferConfig,
    _at_least,
    _check,
    _coerce,
    _flatten,
    added_field,
    apply_overrides,
    settings_of,
    unknown,
)
from harness.core.variants import check_variants, merge_variants

SUITES_DIR = Path(__file__).parent / "suites"


@dataclass(frozen=True)
class RunConfig:
    """Everything one `harness run` does."""

    tasks: tuple[str, ...] = ("sst2",)
    students: tuple[str, ...] = ()  # registered students, by name: the suite names them
    seed: int = 13  # augmentation's seed, and the teacher's
    # students train once per seed (and the teacher too with teacher.per_seed); empty = `seed` alone. A suite may set
    # them per task (per_task: {rte: {seeds: [13, 14, 15]}}); --seeds replaces every task's
    seeds: tuple[int, ...] = ()
    train_limit: int = 0  # use only the first N training examples (smoke runs); 0 = all
    dev_limit: int = 0
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    per_task: dict = field(default_factory=dict)  # task -> {dotted key: value}, e.g. the paper's QQP sizes
    ablations: tuple[str, ...] = ()  # variants trained besides `students`, by name (see harness/core/variants.py)
    # name -> VariantConfig: a student with some settings changed (harness/core/variants.py)
    variants: dict = field(default_factory=dict, metadata={MERGE: merge_variants})
    stats: StatsConfig = field(default_factory=StatsConfig)
    plugins: tuple[str, ...] = ()  # modules imported before the run is checked, e.g. [my_package.students] (core/plugins.py)

    def __post_init__(self) -> None:
        _check(len(self.tasks) > 0, "tasks must name at least one task")
        _check(self.train_limit >= 0 and self.dev_limit >= 0, "train_limit and dev_limit must be >= 0")
        _check(not (self.transfer.source and self.teacher.members),
               "transfer.source trains students from an exported transfer set, with no teacher: drop teacher.members")
        _check(len(set(self.seeds)) == len(self.seeds), f"seeds: each seed once, got {list(self.seeds)}")
        _check(all(s >= 0 for s in self.seeds), f"seeds: each seed an integer >= 0, got {list(self.seeds)}")
        _check(not (self.teacher.per_seed and self.teacher.members),
               "teacher.per_seed repeats one teacher per seed; an ensemble (teacher.members) sets its members' seeds itself")
        check_variants(self)

    def seed_list(self) -> tuple[int, ...]:
        """The student seeds: `seeds`, or the run's `seed` alone."""
        return self.seeds or (self.seed,)

    def teacher_runs(self) -> list[RunConfig]:
        """The config each teacher is fine-tuned and labels with: this one, or one per ensemble member
        (its teacher settings and seed; students keep the run's)."""
        if not self.teacher.members:
            return [self]
        return [dataclasses.replace(self, teacher=t, seed=self.seed if seed is None else seed)
                for t, seed in self.teacher.member_settings()]

    def for_task(self, task: str) -> RunConfig:
        """The config a task runs with: these settings, then the task's own overrides (a bad one is an error naming
        the task: `per_task rte: seeds: each seed once, got [13, 13]`)."""
        where = f"per_task {task}"
        try:
            return apply_overrides(dataclasses.replace(self, per_task={}), self.per_task.get(task, {}), where)
        except HarnessError as e:  # the checks of RunConfig itself do not know the source
            raise HarnessError(str(e) if str(e).startswith(where) else f"{where}: {e}") from None


def suite_path(name: str) -> Path:
    """A suite name (`glue`) resolves to harness/core/suites/<name>.yaml; a path is used as given."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        _check(path.is_file(), f"suite file {path} does not exist")
        return path
    path = SUITES_DIR / f"{name}.yaml"
    known = ", ".join(p.stem for p in sorted(SUITES_DIR.glob("*.yaml")))
    _check(path.is_file(), f"unknown suite {name!r} (known: {known})")
    return path


def parse_set(items: list[str]) -> dict[str, Any]:
    """`["student.hidden=300"]` -> `{"student.hidden": 300}`; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        _check(bool(sep) and bool(key), f"--set {item!r}: expected KEY=VALUE, e.g. student.hidden=300")
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def load_suite(name: str, preset: str | None = None, sets: dict[str, Any] | None = None) -> tuple[RunConfig, dict]:
    """Build the RunConfig for a suite, a preset of it and command-line overrides.

    Returns:
        The config and the suite's description block (name, preset, the raw layers) for results.json.
    """
    path = suite_path(name)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise HarnessError(f"{path}: not valid YAML ({e})") from None
    _check(isinstance(raw, dict), f"{path}: expected a mapping at the top level")
    presets = raw.pop("presets", {}) or {}
    description = raw.pop("description", "")
    layers = [(str(path), raw)]
    if preset is not None:
        if preset not in presets:
            raise HarnessError(f"unknown preset {preset!r} for suite {path.stem} (known: {', '.join(presets)})")
        layers.append((f"{path} preset {preset}", dict(presets[preset] or {})))
    cfg, per_task = RunConfig(), {}
    for source, layer in layers:
        tasks = layer.pop("per_task", {}) or {}
        _check(isinstance(tasks, dict) and all(isinstance(v, dict) for v in tasks.values()),
               f"{source}: per_task must map task names to settings, e.g. per_task: {{qqp: {{student: {{hidden: 300}}}}}}")
        for task, overrides in tasks.items():
            per_task.setdefault(task, {}).update(_flatten(overrides))
        cfg = apply_overrides(cfg, _flatten(layer), source)
    if sets:
        cfg = apply_overrides(cfg, sets, "--set")
    # the command line wins over a task's own settings
    per_task = {t: {k: v for k, v in o.items() if k not in (sets or {})} for t, o in per_task.items()}
    cfg = dataclasses.replace(cfg, per_task=per_task)
    for task in per_task:
        cfg.for_task(task)  # validate every task's settings now, not when the task's turn comes
    return cfg, {"suite": path.stem, "description": description, "preset": preset, "set": sets or {}}
