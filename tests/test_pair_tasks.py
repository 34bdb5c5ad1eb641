"""Pair tasks: QQP's fixed local split of the Quora release, MNLI's GLUE layouts and string labels,
the hub fallback's column and split names, and the F1 metric."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import datasets
import pytest

from harness.core.errors import HarnessError
from harness.core.metrics import score
from harness.core.registry import TASKS
from harness.data import pair_tasks, tasks
from harness.data.tasks import Split, load_task, read_tsv

QQP, MNLI = TASKS.get("qqp"), TASKS.get("mnli")
FIXTURES = Path(__file__).parent / "fixtures" / "glue"
# sha256 of the dev ids, sorted as integers, joined by "\n". Changing it changes every QQP score.
QQP_DEV_SHA256 = "d573c2541aeaf4ecd7bb9f31b49763f27a4f85454f53e7a97d820093d23ff359"


def ids_digest(split: Split) -> str:
    return hashlib.sha256("\n".join(str(i) for i in sorted(int(x) for x in split.ids)).encode()).hexdigest()


@pytest.fixture(scope="module")
def qqp(data_root: Path) -> dict[str, Split]:
    return load_task("qqp")


def test_qqp_split_is_pinned(qqp: dict[str, Split]) -> None:
    """Dev is exactly 20,000 pairs, always the same ones; train is the other 364,000 usable pairs."""
    train, dev = qqp["train"], qqp["validation"]
    assert len(dev) == 20_000 and len(train) == 364_000 and set(qqp) == {"train", "validation"}
    assert ids_digest(dev) == QQP_DEV_SHA256
    assert not set(train.ids) & set(dev.ids)
    assert train.ids == sorted(train.ids, key=int) and dev.ids == sorted(dev.ids, key=int)  # file order kept


def test_qqp_counts_and_empty_question(qqp: dict[str, Split]) -> None:
    """384,001 pairs in the file; the one with an empty question (id 201841) is dropped and counted;
    labels match the file's 141,802 duplicates (none dropped); the source says it is our own split."""
    train, dev = qqp["train"], qqp["validation"]
    assert len(train) + len(dev) == 384_001 - 1
    assert "201841" not in set(train.ids) | set(dev.ids)
    assert sum(train.labels) + sum(dev.labels) == 141_802 and sum(dev.labels) == 7_571
    assert all(s.strip() for t in train.texts + dev.texts for s in t)
    for split in (train, dev):
        assert pair_tasks.LOCAL_SPLIT in split.source and "not GLUE's" in split.source
        assert "1 pair(s) with an empty question dropped" in split.source and "seed 2019" in split.source


def test_qqp_csv_quoting_is_undone(qqp: dict[str, Split]) -> None:
    """Fields the Quora release CSV-quotes come back unquoted (PROVENANCE.md's example, id 8)."""
    by_id = {i: t for split in qqp.values() for i, t in zip(split.ids, split.texts)}
    assert by_id["8"] == ("When do you use シ instead of し?", 'When do you use "&" instead of "and"?')


def test_dev_ids_ignore_order() -> None:
    """The split depends on the ids only, not on their order."""
    ids = [str(i) for i in range(5000)]
    shuffled = random.Random(0).sample(ids, len(ids))
    assert pair_tasks.dev_ids(ids, 100) == pair_tasks.dev_ids(shuffled, 100)
    assert len(pair_tasks.dev_ids(ids, 100)) == 100


def test_f1_is_duplicate_class_in_percent() -> None:
    """F1 of class 1 in percent: precision 2/3, recall 1/2 -> 57.14."""
    got = score(("accuracy", "f1"), [1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 1, 0])
    assert got["accuracy"] == pytest.approx(50.0) and got["f1"] == pytest.approx(400 / 7)
    assert score(("f1",), [0, 0], [0, 0])["f1"] == 0.0  # no positives anywhere: 0, not a warning


def test_mnli_real_dev_files(data_root: Path) -> None:
    """The shared 6-column dev files: 9,815 / 9,832 gold rows, labels mapped to the hub's ids."""
    matched = read_tsv(data_root / "MNLI" / "dev_matched.tsv", MNLI, require_labels=True)
    mismatched = read_tsv(data_root / "MNLI" / "dev_mismatched.tsv", MNLI, require_labels=True)
    assert len(matched) == 9_815 and len(mismatched) == 9_832
    assert [matched.labels.count(k) for k in range(3)] == [3_479, 3_123, 3_213]  # entailment, neutral, contradiction
    assert [mismatched.labels.count(k) for k in range(3)] == [3_463, 3_129, 3_240]
    assert matched.texts[0] == ("The new rights are nice enough", "Everyone really likes the newest benefits ")
    assert matched.labels[0] == 1 and matched.ids[:2] == ["0", "1"]


def test_mnli_glue_layout_fixture() -> None:
    """GLUE's own layout (16-column dev, 12-column train, 10-column unlabelled test) read by column
    name, with raw quotes kept; every split is found. The parse columns of the fixture are placeholders."""
    splits = load_task("mnli", FIXTURES)
    assert {k: len(v) for k, v in splits.items()} == {"train": 6, "validation": 5, "validation_mismatched": 4, "test": 3}
    assert splits["test"].labels is None and splits["validation"].labels == [1, 2, 0, 2, 2]
    assert splits["validation"].texts[3][1].startswith('"Are you sure')
    assert MNLI.eval_splits[:2] == ("validation", "validation_mismatched")
    assert tasks.score_name("validation_mismatched") == "dev_mismatched"


def test_label_names_or_indices(tmp_path: Path) -> None:
    """A `label` column (GLUE/hub naming) may hold names or class indices."""
    path = tmp_path / "x.tsv"
    path.write_text("sentence1\tsentence2\tlabel\na\tb\tcontradiction\nc\td\t0\n")
    assert read_tsv(path, MNLI, require_labels=True).labels == [2, 0]


def test_unknown_label_names_line(tmp_path: Path) -> None:
    """MultiNLI's `-` (no gold label) is not a class: the error names file:line and the classes."""
    path = tmp_path / "x.tsv"
    path.write_text("sentence1\tsentence2\tgold_label\na\tb\tneutral\nc\td\t-\n")
    with pytest.raises(HarnessError) as err:
        read_tsv(path, MNLI, require_labels=True)
    assert f"{path}:3: label '-'" in str(err.value) and "entailment, neutral, contradiction" in str(err.value)


def test_mnli_offline_without_train_is_clear(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared MNLI has no train.tsv: one line naming what is missing, what is there, and the fixes."""

    def offline(task: object) -> None:
        raise ConnectionError("offline")

    monkeypatch.setattr(tasks, "load_from_hub", offline)
    monkeypatch.delenv("HARNESS_DATA", raising=False)
    with pytest.raises(HarnessError) as err:
        load_task("mnli")
    msg = str(err.value)
    assert "\n" not in msg and "MNLI/train.tsv" in msg and "dev_matched.tsv, dev_mismatched.tsv" in msg
    assert "--data-dir" in msg and "hub" in msg and "ConnectionError" in msg


def test_hub_fallback_maps_columns_and_splits(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hub names (premise/hypothesis/label, validation_matched, -1 for unlabelled test) map onto the task's."""
    def row_set(n: int, label: int) -> datasets.Dataset:
        return datasets.Dataset.from_dict({"premise": ["p"] * n, "hypothesis": ["h"] * n, "label": [label] * n,
                                           "idx": list(range(n))})

    hub = datasets.DatasetDict({"train": row_set(4, 2), "validation_matched": row_set(3, 1),
                                "validation_mismatched": row_set(2, 0), "test_matched": row_set(2, -1)})
    monkeypatch.setattr(datasets, "load_dataset", lambda *args: hub)
    monkeypatch.setattr(tasks, "REPO_ROOT", tmp_path)  # no local copy
    monkeypatch.delenv("HARNESS_DATA", raising=False)
    splits = load_task("mnli")
    assert {k: len(v) for k, v in splits.items()} == {"train": 4, "validation": 3, "validation_mismatched": 2, "test": 2}
    assert splits["validation"].labels == [1, 1, 1] and splits["test"].labels is None
    assert splits["train"].texts[0] == ("p", "h") and splits["validation"].source == "hub glue/mnli validation_matched"


def test_qqp_hub_columns(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without the local file, QQP is GLUE's split from the hub (question1/question2/label/idx)."""
    rows = {"question1": ["a?", "b?"], "question2": ["c?", "d?"], "label": [1, 0], "idx": [0, 1]}
    hub = datasets.DatasetDict({s: datasets.Dataset.from_dict(rows) for s in ("train", "validation")})
    monkeypatch.setattr(datasets, "load_dataset", lambda *args: hub)
    monkeypatch.setattr(tasks, "REPO_ROOT", tmp_path)
    monkeypatch.delenv("HARNESS_DATA", raising=False)
    splits = load_task("qqp")
    assert splits["validation"].labels == [1, 0] and splits["train"].ids == ["0", "1"]
    assert pair_tasks.LOCAL_SPLIT not in splits["train"].source
