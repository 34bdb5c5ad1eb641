"""Sentence-pair tasks: QQP and MNLI.

QQP locally is the original Quora release (`QQP/quora_pairs.tsv.gz`: CSV-quoted, tab-separated,
columns id, qid1, qid2, question1, question2, is_duplicate), which is not split into train and dev.
`read_quora` makes a fixed split of it:

1. Pairs with an empty (or all-whitespace) question are dropped and counted (in Split.source): they
   carry no question to compare, and augmentation cannot vary them. The shared file has one (id
   201841, empty question2), so the task declares the file's empty texts known (`Task.empty_texts`):
   anywhere else an empty text is an error.
2. Dev is the QQP_DEV_SIZE pairs whose sha256(f"{QQP_SPLIT_SEED}:{id}") is smallest; train is the
   rest. The split depends only on the ids: not on file order, numpy or Python versions. Both keep
   file order. Its Split.source says "local seeded split": scores on it are not comparable with
   GLUE dev or test scores. Online users without the file get GLUE's own split from the hub.

MNLI uses GLUE's layout (train.tsv, dev_matched.tsv, dev_mismatched.tsv, optional test_*.tsv),
read by column name, so both GLUE's 16-column files and the 6-column shared dev files work. Labels
are names (entailment, neutral, contradiction), mapped to the hub's ids 0, 1, 2.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from operator import itemgetter
from pathlib import Path

from harness.core.errors import HarnessError
from harness.core.registry import TASKS
from harness.data.tasks import Split, Task, read_tsv
from harness.data.tsv import blank

QQP_FILE = "quora_pairs.tsv.gz"
QQP_SPLIT_SEED = 2019  # fixed for good: changing it changes every QQP score
QQP_DEV_SIZE = 20_000
LOCAL_SPLIT = "local seeded split"  # marks Split.source of QQP's own split (not GLUE's)


def split_key(example_id: str, seed: int = QQP_SPLIT_SEED) -> bytes:
    """The sort key that places an example in dev (smallest keys) or train."""
    return hashlib.sha256(f"{seed}:{example_id}".encode()).digest()


def dev_ids(ids: Sequence[str], size: int = QQP_DEV_SIZE, seed: int = QQP_SPLIT_SEED) -> set[str]:
    """The `size` ids with the smallest split keys."""
    return set(sorted(ids, key=lambda i: split_key(i, seed))[:size])


def read_quora(task: Task, folder: Path) -> dict[str, Split]:
    """Train and dev from the Quora release file in `folder`, split as the module docstring says.

    Raises:
        HarnessError: the file lacks ids (a repeated id is read_tsv's error, naming both lines), or has
            too few pairs for the dev set.
    """
    pairs = read_tsv(folder / QQP_FILE, task, require_labels=True)
    if pairs.ids is None:
        raise HarnessError(f"{pairs.source}: a unique {task.id_column!r} column is needed to split train and dev")
    empty = {i for k in range(len(task.text_columns)) for i in blank(map(itemgetter(k), pairs.texts))}
    keep = [i for i in range(len(pairs)) if i not in empty]
    dropped = len(pairs) - len(keep)
    if len(keep) <= QQP_DEV_SIZE:
        raise HarnessError(f"{pairs.source}: {len(keep)} usable pairs, more than {QQP_DEV_SIZE:,} needed for dev")
    dev = dev_ids([pairs.ids[i] for i in keep])
    how = (f"{LOCAL_SPLIT}, not GLUE's: sha256 of id, seed {QQP_SPLIT_SEED}, dev {QQP_DEV_SIZE:,}; "
           f"{dropped} pair(s) with an empty question dropped")
    return {
        "train": pairs.take([i for i in keep if pairs.ids[i] not in dev], f"{pairs.source} train ({how})"),
        "validation": pairs.take([i for i in keep if pairs.ids[i] in dev], f"{pairs.source} dev ({how})"),
    }


TASKS.add(
    "qqp",
    Task(
        name="qqp",
        glue_dir="QQP",
        hub=("glue", "qqp"),
        text_columns=("question1", "question2"),
        label_column="is_duplicate",
        num_labels=2,
        metrics=("accuracy", "f1"),  # accuracy selects checkpoints; F1 of the duplicate class as in GLUE
        files=(("train", QQP_FILE), ("validation", QQP_FILE)),  # both made from the one file by read_quora
        label_names=("not_duplicate", "duplicate"),  # the hub's names; files hold 0 / 1
        aliases=(("label", "is_duplicate"), ("idx", "id")),  # the hub's column names
        id_column="id",
        quoting=csv.QUOTE_MINIMAL,  # the Quora release quotes fields holding `"`, e.g. "Is ""&"" ...?"
        empty_texts=(QQP_FILE,),  # one pair with an empty question (id 201841): read_quora drops and counts it
        reader=read_quora,
    ),
)

TASKS.add(
    "mnli",
    Task(
        name="mnli",
        glue_dir="MNLI",
        hub=("glue", "mnli"),
        text_columns=("sentence1", "sentence2"),
        label_column="gold_label",
        num_labels=3,
        metrics=("accuracy",),
        files=(("train", "train.tsv"), ("validation", "dev_matched.tsv"), ("validation_mismatched", "dev_mismatched.tsv"),
               ("test", "test_matched.tsv"), ("test_mismatched", "test_mismatched.tsv")),
        label_names=("entailment", "neutral", "contradiction"),  # the hub's ids 0, 1, 2
        aliases=(("premise", "sentence1"), ("hypothesis", "sentence2"), ("label", "gold_label"), ("idx", "index")),
        hub_splits=(("validation", "validation_matched"), ("test", "test_matched")),
        id_column="index",
        submit_names=True,
    ),
)
