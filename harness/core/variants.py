"""Ablation variants: the run's students trained with a few settings changed, on the same teacher, data
and seeds as the students themselves.

A suite defines each question once, by name, and a run trains those listed in `ablations`:

    variants:
      kl_t2:     {student: {loss: kl, temperature: 2}}
      mask_only: {augment: {p_pos: 0, p_ng: 0}}
      noaug:     {transfer: false}
    ablations: [kl_t2, noaug]

A variant without `base` applies to every distilled student of each task (the paper's ablations are of
the distilled student): on a task whose students are `s` and `s_soft`, `noaug` trains `s_soft_noaug`.
A variant with `base: <student>` varies that student alone, under its own name, on the tasks it fits.
`ablations` may also name one application, `<student>_<variant>` (e.g. `--set ablations=s_soft_kl_t2`).

- `student`: StudentConfig fields (and the base architecture's settings) changed on top of the run's.
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

from harness.core.errors import HarnessError
from harness.core.settings import AugmentConfig, StudentConfig, _check, _coerce, _flatten, apply_overrides, settings_of, unknown

if TYPE_CHECKING:
    from harness.core.config import RunConfig

FIELDS = ("base", "student", "augment", "transfer")
DISTILL_ONLY = ("loss", "temperature")  # StudentConfig fields that only distilled students use
RESERVED = ("teacher", "augment", "label")  # names of results' stage and model entries


@dataclass(frozen=True)
class VariantConfig:
    """One ablation variant.

    Attributes:
        base: the registered student it varies alone; "" (the usual): every distilled student of each task.
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
    """Every listed ablation is a defined variant (or one application of it, `<student>_<variant>`) and not
    also a student; every variant's settings are valid on top of this config. (Bases and the models'
    names are checked against the registry by `check_registered`, once plugins are loaded.)"""
    names = sorted(cfg.variants)
    for name in cfg.ablations:
        if name not in cfg.variants and not applied_variant(cfg, name):
            applied = [f"{s}_{v}" for s in cfg.students for v in names if not cfg.variants[v].base]
            raise HarnessError(f"ablations: {unknown('variant', name, names + applied)}; define new ones under variants: "
                               "(or name one application, <student>_<variant>)")
    _check(len(set(cfg.ablations)) == len(cfg.ablations), f"ablations lists a variant twice: {', '.join(cfg.ablations)}")
    both = set(cfg.ablations) & set(cfg.students)
    _check(not both, f"{', '.join(sorted(both))}: listed both as a student and as an ablation variant")
    for name in cfg.variants:
        _check(name not in RESERVED, f"variant {name}: the name of a pipeline stage; pick another")
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
    """The run's students, then its ablation variants (`ablation_jobs`), in order.

    Args:
        columns: the task's number of text columns: variants whose base reads another number are left
            out (a suite lists variants of single-sentence and pair students together; each task runs those that fit).
    """
    from harness.core.registry import STUDENTS

    jobs = []
    for name in cfg.students:
        spec = STUDENTS.get(name)
        jobs.append(make_job(name, name, spec, own_settings(cfg.student, spec, name), spec.transfer))
    for name, base, variant_name in ablation_jobs(cfg, columns):
        variant, spec = cfg.variants[variant_name], STUDENTS.get(base)
        student, augment = resolve(cfg, variant_name, own_settings(cfg.student, spec, base))
        jobs.append(make_job(name, base, spec, student, spec.transfer if variant.transfer is None else variant.transfer,
                             None if augment == cfg.augment else augment, variant.describe()))
    return jobs


def ablation_jobs(cfg: RunConfig, columns: int | None = None) -> list[tuple[str, str, str]]:
    """(model name, base student, variant) of each listed ablation: a variant with a base, under its own
    name; one without, on each distilled student of `cfg.students` (`<student>_<variant>`); a listed
    application, `<student>_<variant>`, on its student. Left out: bases that read another number of
    text columns than `columns` (when given)."""
    from harness.core.registry import STUDENTS

    out = []
    for listed in cfg.ablations:
        if listed in cfg.variants and cfg.variants[listed].base:
            pairs = [(listed, cfg.variants[listed].base, listed)]
        elif listed in cfg.variants:
            pairs = [(f"{s}_{listed}", s, listed) for s in cfg.students if STUDENTS.get(s).distill]
        else:
            base, variant = applied_variant(cfg, listed) or ("", "")
            pairs = [(listed, base, variant)]
        out += [p for p in pairs if columns is None or p[1] not in STUDENTS or STUDENTS.get(p[1]).columns == columns]
    return out


def applied_variant(cfg: RunConfig, name: str) -> tuple[str, str] | None:
    """(student, variant) when `name` is `<student>_<variant>` for a variant without a base, else None
    (the student is not checked here: plugins may not be loaded yet; see check_registered)."""
    for variant, settings in sorted(cfg.variants.items(), key=lambda kv: -len(kv[0])):
        if not settings.base and name.endswith(f"_{variant}") and len(name) > len(variant) + 1:
            return name[: -len(variant) - 1], variant
    return None


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
    from harness.core.registry import STUDENTS

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
    from harness.core.registry import REFERENCES, STUDENTS

    check_arch_settings(cfg.student.arch, "student")
    for name, variant in cfg.variants.items():  # every defined variant's student settings, listed or not
        check_arch_settings(variant.student, f"variant {name}: student")
        if variant.base in STUDENTS:
            settings_of(STUDENTS.get(variant.base).settings, resolve(cfg, name)[0].arch, f"variant {name}: student")
    names = [job[0] for job in ablation_jobs_checked(cfg)]
    twice = sorted({n for n in names if names.count(n) > 1} | (set(names) & set(cfg.students)))
    _check(not twice, f"ablations: {', '.join(twice)} would be trained twice (listed as a student, or by two entries)")
    for name, base, variant_name in ablation_jobs_checked(cfg):
        variant, spec = cfg.variants[variant_name], STUDENTS.get(base)
        where = f"variant {variant_name}" + (f" on {base}" if name != variant_name else "")
        _check(name not in STUDENTS and name not in REFERENCES and name not in RESERVED,
               f"{where}: its model would be called {name}, the name of a registered model or a stage; rename the variant")
        sets_distill = [k for k in variant.student if k in (*DISTILL_ONLY, "alpha")]
        _check(spec.distill or not sets_distill, f"{where}: student.{', student.'.join(sets_distill)} "
               f"applies to distilled students; base {base} trains on gold labels")
        transfer = spec.transfer if variant.transfer is None else variant.transfer
        _check(transfer or not variant.augment, f"{where}: augment settings need the transfer set, "
               f"but it trains on the originals only (transfer: false or base {base})")


def ablation_jobs_checked(cfg: RunConfig) -> list[tuple[str, str, str]]:
    """`ablation_jobs` of every column count, each base a registered student (did-you-mean otherwise)."""
    from harness.core.registry import STUDENTS

    jobs = ablation_jobs(cfg)
    for name, base, variant in jobs:
        try:
            STUDENTS.get(base)
        except HarnessError as e:
            raise HarnessError(f"variant {variant}" + (f" ({name})" if name != variant else "") + f": base: {e}") from None
    return jobs
