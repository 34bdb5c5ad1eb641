"""The selection split (issue 14): a pinned, hash-chosen slice of the training file that checkpoints
and early stopping are chosen on, so that dev and test labels reach neither training nor any choice."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import harness

from harness.core.config import SelectionConfig
from harness.core.errors import HarnessError
from harness.data.split import Split, selection_rank, selection_split, trees
from harness.data.tasks import REPO_ROOT, load_task


def test_rank_is_pinned() -> None:
    """sha256-based, so the same on every machine and process; these values must never change (they
    decide which SST-2 sentences every past run held out)."""
    assert selection_rank(("a good film",)) == 4736962357870059903
    assert selection_rank(("first question", "second question")) == 637156818753828947


def test_sst2_selection_split(data_root: Path) -> None:
    """5% of SST-2's 67,349 training sentences, disjoint from the rest by text, in file order, pinned."""
    train = load_task("sst2")["train"]
    selection, rest = selection_split(train, 0.05, 5000)
    assert (len(selection), len(rest)) == (3367, 63982)
    assert selection.fingerprint() == "6697653d8e1fa41d007b"
    assert not set(selection.texts) & set(rest.texts)  # repeated sentences land on one side together
    assert "selection split" in selection.source


def test_most_of_sst2s_selection_split_are_phrases_of_training_sentences(data_root: Path) -> None:
    """SST-2's training file holds every phrase of its trees: 3,028 of the 3,367 held-out examples are word for
    word inside an example still trained on; dev's whole sentences are not (2 of 872)."""
    splits = load_task("sst2")
    selection, rest = selection_split(splits["train"], 0.05, 5000)
    assert sum(selection.inside(rest)) == 3028 and sum(splits["validation"].inside(rest)) == 2


def test_inside_counts_whole_words_only() -> None:
    train = Split([("a good film about cats",), ("dull",)], [1, 0], "train")
    held = Split([("good film",), ("good fil",), ("a good film about cats",), ("film about dogs",)], [1, 1, 1, 1], "held")
    assert held.inside(train) == [True, False, True, False]  # "good fil": no whole-word phrase; "film about dogs": nowhere
    pairs = Split([("q1", "q2")], [0], "pairs")
    assert pairs.inside(pairs) is None


def test_same_split_in_another_process(data_root: Path) -> None:
    """Another interpreter, with another hash() salt, holds out the same examples."""
    code = ("from harness.data.split import selection_split; from harness.data.tasks import load_task; "
            "print(selection_split(load_task('sst2')['train'], 0.05, 5000)[0].fingerprint())")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "6697653d8e1fa41d007b"


def test_limit_and_tiny_splits() -> None:
    """The limit caps the size; one example is held out at least and one left to train on."""
    train = Split([(f"sentence {i}",) for i in range(100)], [i % 2 for i in range(100)], "t")
    assert len(selection_split(train, 0.5, 7)[0]) == 7
    assert [len(s) for s in selection_split(train.head(2), 0.05, 5000)] == [1, 1]
    with pytest.raises(HarnessError, match="selection.fraction"):
        SelectionConfig(fraction=0)


def test_trees_find_each_examples_sentences() -> None:
    """Roots are the examples inside no other (the first of repeated texts); each example knows every root it lies in."""
    texts = ["a good film", "good", "a dull film about cats", "film", "good film", "dull", "good"]
    roots, roots_of = trees(texts)
    assert [texts[r] for r in roots] == ["a dull film about cats", "a good film"]
    assert roots_of == [[1], [1], [0], [0, 1], [1], [0], [1]]


def test_tree_split_holds_out_whole_trees() -> None:
    """A held-out sentence takes along its phrases that no sentence left to train on holds ("film" stays, as "a dull
    film" still trains); so no held-out example is a phrase of a training example."""
    texts = ["a good film", "good", "good film", "a dull film", "dull", "film", "a film about cats", "about cats", "cats"]
    train = Split([(t,) for t in texts], [1, 1, 1, 0, 0, 1, 1, 1, 1], "t")
    ranked = sorted(["a good film", "a dull film", "a film about cats"], key=lambda t: selection_rank((t,)))
    assert ranked[0] == "a good film"  # so the first tree held out is "a good film"'s
    selection, rest = selection_split(train, 0.3, 5000, unit="tree")
    assert [t for (t,) in selection.texts] == ["a good film", "good", "good film"]
    assert "film" in [t for (t,) in rest.texts] and "whole trees" in selection.source
    assert not any(selection.inside(rest))
    assert [t for (t,) in selection_split(train, 0.05, 5000, unit="tree")[0].texts] == ["a good film", "good", "good film"]
    with pytest.raises(HarnessError, match="every example"):
        selection_split(Split([("a b",), ("a",)], [0, 1], "t"), 0.9, 5000, unit="tree")
    with pytest.raises(HarnessError, match="pairs"):
        selection_split(Split([("q1", "q2"), ("q3", "q4")], [0, 1], "p"), 0.5, 5000, unit="tree")
    with pytest.raises(HarnessError, match="selection.unit"):
        SelectionConfig(unit="sentence")


def test_sst2_tree_split(data_root: Path) -> None:
    """SST-2's split of whole trees: 369 sentences with their 2,995 phrases, none inside an example trained on (the
    example split: 3,028 of 3,367); pinned like the example split."""
    splits = load_task("sst2")
    selection, rest = selection_split(splits["train"], 0.05, 5000, unit="tree")
    assert (len(selection), len(rest)) == (3364, 63985)
    assert selection.fingerprint() == "89021186ed95764c254b"
    assert sum(selection.inside(rest)) == 0 and len(trees([t for (t,) in selection.texts])[0]) == 369


SETS = ["teacher.name=hf_tiny", "train_limit=300", "dev_limit=100", "augment.n_iter=1", "measure.enabled=false",
        "measure.threads=1", "ablations=", "selection.limit=100"]


def run(tmp: Path, data: Path, name: str, *extra: str) -> dict:
    proc = harness("run", "--preset", "smoke", "--tasks", "sst2", "--students", "bilstm,bilstm_tiny", "--data-dir", str(data),
                   *[a for s in [*SETS, *extra] for a in ("--set", s)], "--out", str(tmp / name), "--cache-dir",
                   str(tmp / f"cache-{name}"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp / name / "results.json").read_text())["tasks"]["sst2"]


def noisy_copy(data_root: Path, folder: Path) -> Path:
    """SST-2 with every dev label replaced by a coin flip (train and test untouched)."""
    shutil.copytree(data_root / "SST-2", folder / "SST-2")
    lines = (folder / "SST-2" / "dev.tsv").read_text().splitlines()
    rng = random.Random(0)
    noisy = [lines[0], *(f"{line.rsplit(chr(9), 1)[0]}\t{rng.randint(0, 1)}" for line in lines[1:])]
    (folder / "SST-2" / "dev.tsv").write_text("\n".join(noisy) + "\n")
    return folder


def curves(task: dict) -> dict:
    """Every training curve (the scores each checkpoint choice saw) and every saved model's manifest."""
    return {name: [(h["epoch"], h["select"]) for h in meta["history"]]
            for name, meta in task["stages"].items() if "history" in meta}


@pytest.mark.slow
@pytest.mark.usefixtures("data_root")
def test_dev_labels_reach_no_choice(tmp_path: Path, data_root: Path) -> None:
    """Replacing every dev label with noise changes no training curve and no saved weight, only the
    final dev scores; under `selection.on=dev` (the paper's protocol) the same noise changes the curves,
    so this test would see a leak."""
    noisy = noisy_copy(data_root, tmp_path / "noisy")
    clean, dirty = run(tmp_path, data_root, "clean"), run(tmp_path, noisy, "noisy")
    assert curves(clean) == curves(dirty) and len(curves(clean)) == 3  # teacher, bilstm, bilstm_tiny
    for name in clean["models"]:
        assert clean["models"][name]["scores"]["selection"] == dirty["models"][name]["scores"]["selection"], name
        assert clean["models"][name]["scores"]["dev"] != dirty["models"][name]["scores"]["dev"], name
    models = tmp_path / "clean" / "models" / "sst2"
    for model in models.iterdir():
        assert (model / "manifest.json").read_text() == (tmp_path / "noisy" / "models" / "sst2" / model.name /
                                                         "manifest.json").read_text(), model.name
    assert clean["data"]["selection"]["examples"] == 100 and clean["data"]["select_on"] == "selection"

    on_dev = run(tmp_path, data_root, "on-dev", "selection.on=dev"), run(tmp_path, noisy, "on-dev-noisy", "selection.on=dev")
    assert curves(on_dev[0]) != curves(on_dev[1])
    assert "selection" not in on_dev[0]["data"] and "selection" not in on_dev[0]["models"]["bilstm"]["scores"]


def test_selection_phrases_splits_a_runs_selection_accuracy(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """scripts/selection_phrases.py: the selection accuracy of each model and seed on the held-out examples that lie
    inside a training example and on the others, from a run's kept predictions; a run whose kept examples are not
    the data's is refused."""
    import numpy as np

    from harness.results import samples

    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    import selection_phrases

    roots = [f"film number {i} is {'good' if i % 2 else 'bad'}" for i in range(40)]
    rows = [(r, i % 2) for i, r in enumerate(roots)] + [(f"number {i} is", i % 2) for i in range(40)]
    data = tmp_path / "data" / "SST-2"
    data.mkdir(parents=True)
    (data / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"{t} \t{y}\n" for t, y in rows))
    (data / "dev.tsv").write_text("sentence\tlabel\na new film \t1\nanother film \t0\n")
    splits = load_task("sst2", tmp_path / "data")
    selection, train = selection_split(splits["train"], 0.25, 100)
    inside = np.array([selection_phrases_inside(t[0], train.texts) for t in selection.texts])
    assert 0 < inside.sum() < len(selection)  # both parts are there

    run = tmp_path / "run"
    folder = samples.task_folder(run, "sst2")
    samples.write_examples(folder, ("sentence",), [("selection", selection), ("dev", splits["validation"])])
    labels = np.array(selection.labels)
    right_inside = np.where(inside, labels, 1 - labels)  # right on every phrase inside, wrong on the others
    one_hot = np.eye(2, dtype=np.float32)
    samples.write_model(folder, "bilstm", {13: {"selection": one_hot[right_inside], "dev": one_hot[[1, 1]]}})
    (run / "results.json").write_text(json.dumps({"config": {"train_limit": 0}, "tasks": {"sst2": {"data": {
        "selection": {"fraction": 0.25, "limit": 100}}}}}))
    selection_phrases.main([str(run), "--data-dir", str(tmp_path / "data")])
    line = next(x for x in capsys.readouterr().out.splitlines() if "bilstm" in x)
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2:] == ["13", f"{100 * inside.mean():.2f}", "100.00", "0.00", "50.00"]

    dropped = selection.texts[0][0].strip()  # another data file: its selection split differs
    (data / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"{t} \t{y}\n" for t, y in rows if t != dropped))
    with pytest.raises(SystemExit, match="not the ones rebuilt"):
        selection_phrases.main([str(run), "--data-dir", str(tmp_path / "data")])


def selection_phrases_inside(text: str, train: list[tuple[str, ...]]) -> bool:
    return any(f" {text.strip()} " in f" {t[0].strip()} " for t in train)


@pytest.mark.usefixtures("data_root")
def test_a_run_with_the_tree_split(tmp_path: Path, data_root: Path) -> None:
    """`selection.unit=tree` end to end with a teacher: the run holds out the tree split's examples (teacher and students
    choose on them), none of them inside a training example, and says so in its results and report."""
    task = run(tmp_path, data_root, "tree", "selection.unit=tree")
    held, _ = selection_split(load_task("sst2", data_root)["train"], 0.05, 100, unit="tree")
    selection = task["data"]["selection"]
    assert (selection["unit"], selection["examples"], selection["inside_train"]["selection"]) == ("tree", len(held), 0)
    assert task["models"]["teacher"]["scores"]["selection"] and task["models"]["bilstm"]["scores"]["selection"]
    assert "held out (whole trees:" in (tmp_path / "tree" / "report.md").read_text()
