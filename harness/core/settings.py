"""Frozen, validated settings for every stage (teacher, augmentation, students, measurement, selection,
transfer), and the machinery that applies dotted overrides to them with errors naming the key and its
source. harness/core/config.py builds a run's RunConfig from a suite, a preset and --set on top of these.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise HarnessError(msg)


def _at_least(where: str, value: float, least: float, why: str = "") -> None:
    """Refuse a setting below the smallest value that still means something: `teacher.max_length=1: must be
    at least 8 (why)`."""
    _check(value >= least, f"{where}={value}: must be at least {least}" + (f" ({why})" if why else ""))


def unknown(what: str, name: str, known: list[str]) -> str:
    """`unknown <what> 'x'; did you mean 'y'? (known: ...)`, for error messages."""
    close = difflib.get_close_matches(name, known, n=1)
    return f"unknown {what} {name!r}" + (f"; did you mean {close[0]!r}?" if close else "") + f" (known: {', '.join(known)})"


KEY_IF_CHANGED = "cache key if changed"
MERGE = "merge overrides with"  # field metadata: a function (current, overrides, source) -> new value
TEACHER_MIN_LENGTH = 8  # wordpieces, [CLS] and [SEP] included: below it a setting means nothing
STUDENT_MIN_TOKENS = 4  # words


def added_field(default: Any) -> Any:
    """A field added after cache keys existed: it enters cache keys only when not at its default, so
    the keys of configs that leave it alone stay valid (harness.engine.stages.cache_view)."""
    return field(default=default, metadata={KEY_IF_CHANGED: True})


@dataclass(frozen=True)
class TeacherConfig:
    """Teacher fine-tuning and labelling (AdamW, linear warm-up and decay, best-on-dev checkpoint)."""

    name: str = "hf"
    checkpoint: str = "minilm"
    epochs: int = 3
    lr: float = 3e-5
    batch_size: int = 32
    max_length: int = 64
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    train_limit: int = 0  # fine-tune on a seeded sample of this many training examples; 0 = all
    evals_per_epoch: int = 1
    # rows per labelling call; 0 = auto: 32 on a CPU, 256 on a GPU. On 2 CPU cores, length-sorted calls of 32
    # labelled quick SST-2 rows 1.2x (PyTorch) and 1.2-1.4x (ONNX Runtime) faster than calls of 256
    label_batch_size: int = 0
    precision: str = added_field("fp32")  # bf16: fine-tuning and labelling under bfloat16 autocast
    label_backend: str = added_field("torch")  # onnx, onnx-int8: labelling through ONNX Runtime (cost measured)
    # an ensemble: each member is these settings with its own changes (any teacher field, and `seed`), e.g.
    # [{seed: 13}, {seed: 14}] or [{}, {checkpoint: mpnet}]; the transfer set gets the members' mean logits
    members: tuple[dict, ...] = added_field(())
    # with several `seeds`: fine-tune (and label with) a teacher per seed, each student distilled from its seed's
    # teacher; false: one teacher (the run's `seed`) labels for every student seed
    per_seed: bool = added_field(False)

    def __post_init__(self) -> None:
        if self.members:
            self.member_settings()  # each member's settings are checked now, naming the member
        _check(self.precision in ("fp32", "bf16"), "teacher.precision must be fp32 or bf16")
        _check(self.label_backend in ("torch", "onnx", "onnx-int8"), "teacher.label_backend must be torch, onnx or onnx-int8")
        _check(self.epochs >= 1, "teacher.epochs must be >= 1")
        _check(self.lr > 0, "teacher.lr must be > 0")
        _check(self.batch_size >= 1 and self.label_batch_size >= 0, "teacher.batch_size must be >= 1 and "
               "teacher.label_batch_size >= 0 (0 = auto)")
        _check(0 <= self.warmup_ratio < 1, "teacher.warmup_ratio must be in [0, 1)")
        _check(self.train_limit >= 0, "teacher.train_limit must be >= 0 (0 = all)")
        _check(self.evals_per_epoch >= 1, "teacher.evals_per_epoch must be >= 1")
        _at_least("teacher.max_length", self.max_length, TEACHER_MIN_LENGTH,
                  "a [CLS] and [SEP] plus a few tokens; at 1 the teacher sees only [CLS]")
        _at_least("teacher.weight_decay", self.weight_decay, 0, "0 = none")

    def member_settings(self) -> list[tuple[TeacherConfig, int | None]]:
        """Each ensemble member's teacher settings and seed (None: the run's seed).

        Raises:
            HarnessError: fewer than two members, or a member with an unknown or invalid setting.
        """
        _check(len(self.members) >= 2, f"teacher.members: an ensemble needs at least 2 members, got {len(self.members)}")
        base, out = dataclasses.replace(self, members=()), []
        for i, member in enumerate(self.members, 1):
            where = f"teacher.members[{i}]"
            _check(isinstance(member, dict), f"{where}: expected a mapping of teacher settings, e.g. {{seed: 14}}")
            _check("members" not in member, f"{where}: a member cannot itself be an ensemble")
            seed = member.get("seed")
            _check(seed is None or (isinstance(seed, int) and not isinstance(seed, bool)), f"{where}: seed must be an integer")
            out.append((apply_overrides(base, {k: v for k, v in member.items() if k != "seed"}, where), seed))
        return out


@dataclass(frozen=True)
class AugmentConfig:
    """The paper's transfer-set augmentation: mask, POS-guided replacement, n-gram sampling."""

    enabled: bool = True
    n_iter: int = 20
    p_mask: float = 0.1
    p_pos: float = 0.1
    p_ng: float = 0.25
    ngram_max: int = 5
    source_limit: int = 0  # augment a seeded sample of this many training examples; 0 = all

    def __post_init__(self) -> None:
        for name in ("p_mask", "p_pos", "p_ng"):
            _check(0 <= getattr(self, name) <= 1, f"augment.{name} must be in [0, 1]")
        _check(self.p_mask + self.p_pos <= 1, "augment.p_mask + augment.p_pos must be <= 1")
        _check(self.n_iter >= 0, "augment.n_iter must be >= 0")
        _check(self.ngram_max >= 1, "augment.ngram_max must be >= 1")
        _check(self.source_limit >= 0, "augment.source_limit must be >= 0 (0 = all)")


@dataclass(frozen=True)
class StudentConfig:
    """How every student trains (Adadelta, early stopping on the selection split), and `arch`: the
    settings of the students' own architectures.

    A `student.<field>` that is not a field here (`hidden`, `fc`, ...) goes into `arch`; each student
    takes the ones its architecture's settings dataclass has (StudentSpec.settings) and checks them
    there. `harness.core.variants.check_registered` refuses a field no registered student has.
    """

    embedding: str = "glove50"  # glove50 | teacher | random | a vectors file (harness/engine/embeddings.py)
    embed_dim: int = 300  # used by `random` only; the others bring their own width
    alpha: float = 0.0
    lr: float = 1.0
    rho: float = 0.95
    batch_size: int = 50
    epochs: int = 10
    evals_per_epoch: int = 1  # dev checks per epoch; early stopping counts checks, not epochs
    patience: int = 2
    max_tokens: int = 64
    loss: str = added_field("mse")  # distillation term: mse | kl (T-softened, x T^2) | hard (CE on argmax)
    temperature: float = added_field(1.0)  # kl only
    precision: str = added_field("fp32")  # bf16: training steps under bfloat16 autocast (weights, checkpoint choice fp32)
    # N > 0: the initial vectors' top N principal components, an N-wide table (trained as any other); 0: their own width.
    # 300 is the paper's word2vec width: with it the default BiLSTM has the paper's 963,002 weights outside embeddings.
    project: int = added_field(0)
    # true: dev is also scored at every check, into the history (`dev`), choosing nothing (checkpoint and stopping stay
    # on the selection split): for published figures that are the best dev score seen while training.
    watch_dev: bool = added_field(False)
    # d > 0: each check scores (and may keep) an exponential moving average of the weights, updated every step with
    # decay d (torch.optim.swa_utils; about 1 / (1 - d) steps remembered), instead of the step's own weights. Not
    # bias-corrected: the average starts at the initial weights, so early checks score partly untrained ones.
    average: float = added_field(0.0)
    arch: dict = field(default_factory=dict, metadata={KEY_IF_CHANGED: True})  # architecture settings, e.g. {hidden: 150}

    def __post_init__(self) -> None:
        _check(self.precision in ("fp32", "bf16"), "student.precision must be fp32 or bf16")
        _check(self.loss in LOSSES, f"student.loss must be one of {', '.join(LOSSES)}")
        _check(self.temperature == 1 or (self.temperature > 0 and self.loss == "kl"),
               "student.temperature must be > 0 and applies to student.loss=kl only")
        _check(self.embedding in EMBEDDINGS or Path(self.embedding).suffix in VECTOR_FILES,
               f"student.embedding={self.embedding}: must be one of {', '.join(EMBEDDINGS)}, or a file of word vectors "
               f"({', '.join(VECTOR_FILES)}: a word and vector table, or word2vec/GloVe text)")
        _check(self.embedding in EMBEDDINGS or Path(self.embedding).is_file(),
               f"student.embedding={self.embedding}: no such file")
        _check(0 <= self.alpha <= 1, "student.alpha must be in [0, 1]")
        _check(min(self.epochs, self.patience, self.evals_per_epoch) >= 1,
               "student.epochs, student.patience and student.evals_per_epoch must be >= 1")
        _check(self.batch_size >= 1, "student.batch_size must be >= 1")
        _at_least("student.max_tokens", self.max_tokens, STUDENT_MIN_TOKENS, "a few words; at 1 the student sees only the first")
        _at_least("student.embed_dim", self.embed_dim, 1, "the width of `random` embeddings")
        _check(0 <= self.average < 1, f"student.average={self.average}: must be in [0, 1) (0 = off; e.g. 0.999)")
        _check(self.project >= 0, f"student.project={self.project}: must be >= 0 (0 = the vectors' own width)")
        _check(self.lr > 0, f"student.lr={self.lr}: must be > 0 (Adadelta's step scale; the paper's is 1.0)")
        _check(0 <= self.rho < 1, f"student.rho={self.rho}: must be in [0, 1) (Adadelta's decay; at 1 its averages "
               "never move; the paper's is 0.95)")


def settings_of(settings_type: type, arch: dict, source: str) -> Any:
    """An architecture's settings (a StudentSpec's `settings` dataclass) from `student.arch`: the fields
    it has, checked (type and its own __post_init__); the others belong to other architectures."""
    names = {f.name for f in dataclasses.fields(settings_type)}
    return apply_overrides(settings_type(), {k: v for k, v in arch.items() if k in names}, source)


EMBEDDINGS = ("glove50", "teacher", "random")
VECTOR_FILES = (".parquet", ".txt", ".vec")  # student.embedding may also name such a file
LOSSES = ("mse", "kl", "hard")


@dataclass(frozen=True)
class StatsConfig:
    """Intervals and paired tests (harness/results/stats.py)."""

    resamples: int = 1000  # bootstrap and permutation resamples per interval or test; 0 = none computed

    def __post_init__(self) -> None:
        _at_least("stats.resamples", self.resamples, 0, "0 = no intervals or tests")


@dataclass(frozen=True)
class MeasureConfig:
    """Parameters and latency: batch 1 over dev sentences, batch 512 over training sentences, for
    every trained model and timing-only reference, on each backend and device listed."""

    enabled: bool = True
    threads: int = 0  # 0 = all cores this process may use
    interactive_threads: int = 1  # batch-1 timing: one thread per request (0 = as `threads`)
    warmup: int = 10
    interactive_n: int = 200
    interactive_passes: int = 3  # the batch-1 sample is timed this many times over; percentiles pool all calls
    offline_batch: int = 512
    offline_n: int = 0  # sentences timed in the offline regime; 0 = all training sentences
    teacher_offline_n: int = 2048  # the teacher is too slow for all of them on a CPU: projected
    offline_min_calls: int = 8  # a sample of fewer batches is timed again, whole passes, up to...
    # ...and one timed in under offline_min_s seconds too (with a single 0.6-1 s pass each, two BiLSTMs of the zoo timed
    # 1.6x apart on int8 in one run; with two passes, 1.1x), up to...
    offline_min_s: float = 1.0
    offline_max_s: float = 10.0  # ...this many seconds of passes; the median pass counts
    backends: tuple[str, ...] = ("torch", "onnx", "onnx-int8")  # int8 applies to students only
    devices: tuple[str, ...] = ("cpu", "cuda")  # cuda is skipped (and recorded so) without a GPU
    gpu_autocast: str = "bf16"  # transformers on CUDA are also timed in this dtype: bf16 | fp16 | none
    references: tuple[str, ...] = ("bert_large", "bert_base", "elmo")  # random weights, timing only
    reference_interactive_n: int = 30
    reference_offline_n: int = 512

    def __post_init__(self) -> None:
        _check(self.threads >= 0 and self.interactive_threads >= 0, "measure.threads and interactive_threads must be >= 0")
        _check(self.offline_min_calls >= 1 and min(self.offline_min_s, self.offline_max_s) >= 0,
               "measure.offline_min_calls must be >= 1, measure.offline_min_s and offline_max_s >= 0")
        sizes = (self.interactive_n, self.interactive_passes, self.offline_batch, self.reference_interactive_n,
                 self.reference_offline_n)
        _check(min(sizes) >= 1, "measure sizes (interactive_n, interactive_passes, offline_batch, reference_*_n) must be >= 1")
        _at_least("measure.teacher_offline_n", self.teacher_offline_n, 1, "sentences the teacher is timed on, batch "
                  "offline_batch; it has no 0 = all")
        _at_least("measure.offline_n", self.offline_n, 0, "0 = all training sentences")
        _at_least("measure.warmup", self.warmup, 0, "untimed batch-1 calls; 0 = none")
        bad = set(self.backends) - set(BACKENDS)
        _check(not bad, f"measure.backends: unknown {', '.join(sorted(bad))} (known: {', '.join(BACKENDS)})")
        bad = set(self.devices) - {"cpu", "cuda"}
        _check(not bad, f"measure.devices: unknown {', '.join(sorted(bad))} (known: cpu, cuda)")
        _check(self.gpu_autocast in ("bf16", "fp16", "none"), "measure.gpu_autocast must be bf16, fp16 or none")


BACKENDS = ("torch", "onnx", "onnx-int8")


@dataclass(frozen=True)
class SelectionConfig:
    """Which split early stopping and best-checkpoint choice use (teacher and students alike).

    `on: selection` (the default) holds out a slice of the training file chosen by a hash of each
    example's text (harness.data.split.selection_split): removed from teacher and student training and from
    the transfer set's originals, so dev and test are scored once, at the end, and choose nothing.
    `on: dev` is the paper's protocol (choose on dev, report dev), for comparison with published numbers.
    `unit: tree` holds out whole sentences with the phrases inside them instead of single examples, for a
    training file of phrase trees (SST-2), so that no held-out example is a phrase of one trained on.
    """

    on: str = "selection"
    fraction: float = 0.05  # of the training file, before train_limit
    limit: int = 5000  # at most this many examples
    unit: str = "example"  # or "tree": single-sentence tasks only (harness.data.split.tree_selection_split)

    def __post_init__(self) -> None:
        _check(self.on in ("selection", "dev"), "selection.on must be selection or dev")
        _check(self.unit in ("example", "tree"), "selection.unit must be example or tree")
        _check(0 < self.fraction < 1, "selection.fraction must be in (0, 1)")
        _check(self.limit >= 1, "selection.limit must be >= 1")


@dataclass(frozen=True)
class TransferConfig:
    """Where students' training rows come from: this run's teacher (the default), or a transfer set
    exported by `harness export-transfer` (`source`: its folder), which runs no teacher at all."""

    source: str = ""

    def __post_init__(self) -> None:
        _check(isinstance(self.source, str), "transfer.source must be a folder path")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check `value` against a dataclass field's type hint; ints are accepted for floats."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        _check(isinstance(items, (list, tuple)), f"{where}: expected a list, got {value!r}")
        if isinstance(value, str) and typing.get_args(hint)[0] is int:  # "13,14,15": the command line's integers
            _check(all(v.lstrip("-").isdigit() for v in items), f"{where}: expected integers, got {value!r}")
            items = [int(v) for v in items]
        return tuple(_coerce(v, typing.get_args(hint)[0], where) for v in items)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    ok = isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    _check(ok, f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def apply_overrides(cfg: Any, overrides: dict[str, Any], source: str) -> Any:
    """Return a copy of the dataclass `cfg` with dotted-key `overrides` applied and validated."""
    nested: dict[str, Any] = {}
    for dotted, value in overrides.items():
        head, _, rest = dotted.partition(".")
        nested.setdefault(head, {})
        if rest:
            _check(isinstance(nested[head], dict), f"{source}: {head!r} set both as a value and a section")
            nested[head][rest] = value
        else:
            nested[head] = value
    hints = typing.get_type_hints(type(cfg))
    names = [f.name for f in dataclasses.fields(cfg)]
    changes: dict[str, Any] = {}
    for key, value in nested.items():
        if isinstance(cfg, StudentConfig) and (key not in names or key == "arch"):  # an architecture's setting
            arch = value if key == "arch" else {key: value}
            _check(isinstance(arch, dict), f"{source}: arch is a section of architecture settings, e.g. arch.hidden=300")
            changes["arch"] = {**changes.get("arch", cfg.arch), **arch}
            continue
        if key not in names:
            raise HarnessError(f"{source}: {unknown(f'setting in {type(cfg).__name__}', key, names)}")
        current = getattr(cfg, key)
        merge = {f.name: f.metadata.get(MERGE) for f in dataclasses.fields(cfg)}[key]
        if merge is not None:  # a field that merges its overrides itself (RunConfig.variants)
            changes[key] = merge(current, value, source)
        elif dataclasses.is_dataclass(current):
            _check(isinstance(value, dict), f"{source}: {key!r} is a section; set its fields, e.g. {key}.<field>=...")
            changes[key] = apply_overrides(current, value, f"{source}: {key}")
        else:
            changes[key] = _coerce(value, hints[key], f"{source}: {key}")
    return dataclasses.replace(cfg, **changes)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
