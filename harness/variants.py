"""Ablation variants: a registered student trained with a few settings changed, on the same teacher,
data and seeds as the run's own students.

A suite defines variants by name and a run trains those listed in `ablations`:

    variants:
      bilstm_soft_kl_t2:     {base: bilstm_soft, student: {loss: kl, temperature: 2}}
      bilstm_soft_mask_only: {base: bilstm_soft, augment: {p_pos: 0, p_ng: 0}}
      bilstm_soft_noaug:     {base: bilstm_soft, transfer: false}
    ablations: [bilstm_soft_kl_t2, bilstm_soft_noaug]

- `student`: StudentConfig fields changed on top of the run's (and the base's own) settings.
- `augment`: AugmentConfig fields changed: the variant trains on the run's originals plus its own
  synthetic rows, augmented and labelled once per distinct setting (cached, so shared by variants).
- `transfer`: train on the transfer set (true) or on the original training set only (false: with a
  distilled base, the originals' teacher logits, i.e. distillation without augmentation).
A variant whose settings come out equal to its base's shares the base's cached student.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.settings import AugmentConfig, StudentConfig, _check, _coerce, _flatten, apply_overrides, settings_of, unknown

if TYPE_CHECKING:
    from harness.config import RunConfig

FIELDS = ("base", "student", "augment", "transfer")
DISTILL_ONLY = ("loss", "temperature")  # StudentConfig fields that only distilled students use
RESERVED = ("teacher", "augment", "label")  # names of results' stage and model entries


@dataclass(frozen=True)
class VariantConfig:
    """One ablation variant.

    Attributes:
        base: the registered student it varies (`bilstm_soft`, `siamese_bilstm_soft`, ...).
        student: StudentConfig fields it changes, e.g. {"loss": "kl", "temperature": 2.0}.
        augment: AugmentConfig fields it changes, e.g. {"p_pos": 0.0, "p_ng": 0.0}.
        transfer: train on the transfer set (True) or the originals only (False); None: as the base.
    """

    base: str = ""
    student: dict = field(default_factory=dict)
    augment: dict = field(default_factory=dict)
    transfer: bool | None = None

    def describe(self) -> str:
        """What the variant changes, in words, e.g. `student.loss=kl, student.temperature=2.0`."""
        parts = [f"{section}.{k}={v}" for section in ("student", "augment") for k, v in getattr(self, section).items()]
        if self.transfer is not None:
            parts.append("trained on the transfer set" if self.transfer else "no augmentation (originals only)")
        return ", ".join(parts) or "nothing"


def merge_variants(current: dict[str, VariantConfig], overrides: Any, source: str) -> dict[str, VariantConfig]:
    """Apply `{name.field: value}` (or nested `{name: {field: value}}`) overrides to `current`;
    a section (`student`, `augment`) merges field by field into what the variant already sets."""
    _check(isinstance(overrides, dict), f"{source}: expected a mapping of variant names to settings, "
           "e.g. variants: {my_kl_t2: {base: <a distilled student>, student: {loss: kl, temperature: 2}}}")
    out = dict(current)
    for dotted, value in _flatten(overrides).items():
        name, _, rest = dotted.partition(".")
        head, _, key = rest.partition(".")
        where = f"{source}: variant {name}"
        if head not in FIELDS:
            raise HarnessError(f"{where}: {unknown('variant setting', head, list(FIELDS))}")
        variant = out.get(name, VariantConfig())
        if head in ("student", "augment"):
            _check(bool(key), f"{where}: {head} is a section; set its fields, e.g. {head}: {{loss: kl}}")
            variant = dataclasses.replace(variant, **{head: {**getattr(variant, head), key: value}})
        else:
            _check(not key, f"{where}: {head} is a value, not a section")
            value = _coerce(value, bool if head == "transfer" else str, f"{where}: {head}")
            variant = dataclasses.replace(variant, **{head: value})
        out[name] = variant
    return out


def resolve(cfg: RunConfig, name: str, student: StudentConfig | None = None) -> tuple[StudentConfig, AugmentConfig]:
    """Variant `name`'s student and augmentation settings: the run's (`student`: its base's) with the
    variant's changes, validated."""
    variant = cfg.variants[name]
    return (apply_overrides(student or cfg.student, variant.student, "student"),
            apply_overrides(cfg.augment, variant.augment, "augment"))


def check_variants(cfg: RunConfig) -> None:
    """Every listed ablation is a defined variant and not also a student; every variant has a base and
    settings that are valid on top of this config. (Bases are checked against the registry by
    `check_registered`, once plugins are loaded.)"""
    names = sorted(cfg.variants)
    for name in cfg.ablations:
        if name not in cfg.variants:
            raise HarnessError(f"ablations: {unknown('variant', name, names)}; define new ones under variants:")
    _check(len(set(cfg.ablations)) == len(cfg.ablations), f"ablations lists a variant twice: {', '.join(cfg.ablations)}")
    both = set(cfg.ablations) & set(cfg.students)
    _check(not both, f"{', '.join(sorted(both))}: listed both as a student and as an ablation variant")
    for name, variant in cfg.variants.items():
        _check(name not in RESERVED, f"variant {name}: the name of a pipeline stage; pick another")
        _check(bool(variant.base), f"variant {name}: set base, the registered student it varies (see `harness ls students`)")
        try:
            resolve(cfg, name)
        except HarnessError as e:
            raise HarnessError(f"variant {name}: {e}") from None


@dataclass(frozen=True)
class StudentJob:
    """One student stage of a run: a registered student, or an ablation variant of one.

    Attributes:
        name: the model's name in results and under models/ (the student's, or the variant's).
        base: the registered student trained.
        student: its effective training settings (`arch` emptied: its architecture's are `settings`).
        settings: its architecture's settings (an instance of its StudentSpec's `settings` dataclass).
        transfer: trains on the transfer set (True) or the originals only.
        augment: the variant's own augmentation settings when they differ from the run's, else None.
        changes: what the variant changes, in words; "" for a registered student.
    """

    name: str
    base: str
    student: StudentConfig
    settings: Any
    transfer: bool
    augment: AugmentConfig | None = None
    changes: str = ""



def student_jobs(cfg: RunConfig, columns: int | None = None) -> list[StudentJob]:
    """The run's students, then its ablation variants, in order.

    Args:
        columns: the task's number of text columns: variants whose base reads another number are left
            out (a suite lists single-sentence and pair variants together; each task runs those that fit).
    """
    from harness.registry import STUDENTS

    jobs = []
    for name in cfg.students:
        spec = STUDENTS.get(name)
        jobs.append(make_job(name, name, spec, own_settings(cfg.student, spec, name), spec.transfer))
    for name in cfg.ablations:
        variant = cfg.variants[name]
        spec = STUDENTS.get(variant.base)
        if columns is not None and spec.columns != columns:
            continue
        student, augment = resolve(cfg, name, own_settings(cfg.student, spec, variant.base))
        jobs.append(make_job(name, variant.base, spec, student, spec.transfer if variant.transfer is None else variant.transfer,
                             None if augment == cfg.augment else augment, variant.describe()))
    return jobs


def own_settings(student: StudentConfig, spec, name: str) -> StudentConfig:
    """The run's student settings with what the registered student fixes (`StudentSpec.overrides`)."""
    return apply_overrides(student, spec.overrides, f"student {name}") if spec.overrides else student


def make_job(name: str, base: str, spec, student: StudentConfig, transfer: bool, augment: AugmentConfig | None = None,
             changes: str = "") -> StudentJob:
    """A StudentJob, its architecture's settings taken out of `student.arch` and checked."""
    settings = settings_of(spec.settings, student.arch, f"student ({name}: {spec.settings.__name__})")
    return StudentJob(name, base, distill_only(spec, dataclasses.replace(student, arch={})), settings, transfer, augment,
                      changes)


def distill_only(spec, student: StudentConfig) -> StudentConfig:
    """A label-only student ignores the distillation settings: reset them so they do not enter its key."""
    if spec.distill:
        return student
    defaults = {f.name: f.default for f in dataclasses.fields(StudentConfig) if f.name in DISTILL_ONLY}
    return dataclasses.replace(student, **defaults)


def architecture_fields(names: list[str] | None = None) -> dict[str, list[str]]:
    """field -> the registered students (all, or `names`) whose architecture settings have it."""
    from harness.registry import STUDENTS

    out: dict[str, list[str]] = {}
    for name in STUDENTS.names() if names is None else names:
        for f in dataclasses.fields(STUDENTS.get(name).settings):
            out.setdefault(f.name, []).append(name)
    return out


def check_arch_settings(arch: dict, source: str, chosen: list[str] | None = None) -> None:
    """Every architecture setting is a field of some registered student's settings (of one of `chosen`,
    when given: the settings a user set on the command line must reach one of the run's students).

    Raises:
        HarnessError: naming the setting and the fields there are.
    """
    known = architecture_fields(chosen)
    training = [f.name for f in dataclasses.fields(StudentConfig) if f.name != "arch"]
    for key in arch:
        if key not in known and key not in training:
            whose = f"none of this run's students ({', '.join(chosen)}) has it" if chosen is not None else \
                "no registered student has it"
            raise HarnessError(f"{source}.{key}: {whose}; {unknown('student setting', key, sorted(training + [*known]))}")


def check_registered(cfg: RunConfig) -> None:
    """Bases are registered students (did-you-mean otherwise), variant names are not, and every
    variant's changes apply to its base (distillation settings need a distilled base, augmentation
    settings need the transfer set)."""
    from harness.registry import REFERENCES, STUDENTS

    check_arch_settings(cfg.student.arch, "student")
    for name, variant in cfg.variants.items():  # every defined variant's student settings, listed or not
        check_arch_settings(variant.student, f"variant {name}: student")
        if variant.base in STUDENTS:
            settings_of(STUDENTS.get(variant.base).settings, resolve(cfg, name)[0].arch, f"variant {name}: student")
    for name in cfg.ablations:
        variant = cfg.variants[name]
        try:
            spec = STUDENTS.get(variant.base)
        except HarnessError as e:
            raise HarnessError(f"variant {name}: base: {e}") from None
        _check(name not in STUDENTS and name not in REFERENCES, f"variant {name}: the name of a registered model; pick another")
        sets_distill = [k for k in variant.student if k in (*DISTILL_ONLY, "alpha")]
        _check(spec.distill or not sets_distill, f"variant {name}: student.{', student.'.join(sets_distill)} "
               f"applies to distilled students; base {variant.base} trains on gold labels")
        transfer = spec.transfer if variant.transfer is None else variant.transfer
        _check(transfer or not variant.augment, f"variant {name}: augment settings need the transfer set, "
               f"but it trains on the originals only (transfer: false or base {variant.base})")
