"""`student.embedding=FILE`: a user's own word vectors (word2vec/GloVe text, or a word and vector table)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.core.errors import HarnessError
from harness.core.settings import StudentConfig
from harness.core.variants import StudentJob
from harness.engine.embeddings import initial_vectors
from harness.engine.student_stage import student_key_view
from students.bilstm import BiLSTMSettings

WORDS = ["<pad>", "<unk>", "good", "Film", "new york", "[MASK]"]


def text_file(tmp_path: Path, header: bool) -> Path:
    path = tmp_path / "vectors.txt"
    lines = ["good 1 2 3", "film 4 5 6", "new york 7 8 9", "bad 0 0 1"]  # GloVe has words with spaces
    path.write_text("\n".join((["4 3"] if header else []) + lines) + "\n")
    return path


@pytest.mark.parametrize("header", [True, False])
def test_text_vectors_by_word_then_lower_case(tmp_path: Path, header: bool) -> None:
    """word2vec's text format (with its "count width" line) and GloVe's (without): each word's own vector, a
    capitalised word finds its lower-cased one, a word with a space finds its line; the rest are random at the
    file's scale, padding stays zero."""
    vectors, meta = initial_vectors(str(text_file(tmp_path, header)), WORDS, dim=99, seed=0)
    assert vectors.shape == (6, 3) and vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors[2:5], [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    assert not vectors[0].any() and vectors[5].any() and vectors[1].any()
    assert meta["embedding"] == "file" and meta["file"] == "vectors.txt" and meta["dim"] == 3
    assert meta["coverage"] == round(3 / 6, 4)
    assert len(meta["sha256"]) == 64


def test_a_table_gives_the_same_vectors_as_its_text(tmp_path: Path) -> None:
    """A `word`/`vector` parquet table (as export-transfer's teacher_vectors.parquet) reads as its text twin."""
    words = ["good", "film", "new york", "bad"]
    flat = pa.array(np.arange(1, 13, dtype=np.float32))
    table = pa.table({"word": words, "vector": pa.FixedSizeListArray.from_arrays(flat, 3)})
    pq.write_table(table, tmp_path / "vectors.parquet")
    (tmp_path / "twin.txt").write_text("".join(f"{w} {3*i+1} {3*i+2} {3*i+3}\n" for i, w in enumerate(words)))
    from_table, _ = initial_vectors(str(tmp_path / "vectors.parquet"), WORDS, dim=1, seed=0)
    from_text, _ = initial_vectors(str(tmp_path / "twin.txt"), WORDS, dim=1, seed=0)
    np.testing.assert_array_equal(from_table, from_text)


def test_a_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "v.vec"
    path.write_text("good 1 2 3\nfilm 4 x 6\n")
    with pytest.raises(HarnessError, match=r"v\.vec:2: not a number among the 3 after 'film'"):
        initial_vectors(str(path), WORDS, dim=1, seed=0)
    path.write_text("good 1 2 3\nfilm\n")
    with pytest.raises(HarnessError, match=r"v\.vec:2: 0 numbers after the word, expected 3"):
        initial_vectors(str(path), WORDS, dim=1, seed=0)
    (tmp_path / "none.txt").write_text("zebra 1 2\n")
    with pytest.raises(HarnessError, match="none of the students' 6 words has a vector"):
        initial_vectors(str(tmp_path / "none.txt"), WORDS, dim=1, seed=0)
    (tmp_path / "t.parquet").write_text("not parquet")
    with pytest.raises(HarnessError, match=r"t\.parquet: not a vectors table"):
        initial_vectors(str(tmp_path / "t.parquet"), WORDS, dim=1, seed=0)


def test_the_setting_names_a_file_that_exists_with_a_known_suffix(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=r"student.embedding=w2v.bin: must be one of glove50, teacher, random, or a file"):
        StudentConfig(embedding="w2v.bin")
    with pytest.raises(HarnessError, match=r"student.embedding=.*nothere.txt: no such file"):
        StudentConfig(embedding=str(tmp_path / "nothere.txt"))
    assert StudentConfig(embedding=str(text_file(tmp_path, header=False))).embedding.endswith("vectors.txt")


def test_the_cache_key_holds_the_contents_not_the_path(tmp_path: Path) -> None:
    """The same vectors under another name keep a student's key; other vectors under the same name change it."""
    def key_view(path: Path) -> dict:
        return student_key_view(StudentJob("bilstm", "bilstm", StudentConfig(embedding=str(path)), BiLSTMSettings(),
                                            transfer=True))

    first = text_file(tmp_path, header=False)
    moved = tmp_path / "elsewhere.txt"
    moved.write_bytes(first.read_bytes())
    assert key_view(first) == key_view(moved)
    assert key_view(first)["embedding"].startswith("file:")
    before = key_view(first)
    first.write_text("good 9 9 9\n")
    os.utime(first, ns=(1, 1))  # a new time, as an edit gives
    assert key_view(first) != before


def test_context_vectors_average_a_words_pieces_and_occurrences(tmp_path: Path) -> None:
    """scripts/context_vectors.py: a word's vector at layer L is the mean, over its occurrences, of the mean of
    its pieces' hidden states there (computed here by hand through the same model), and the file it writes is
    one `student.embedding` reads back."""
    import sys

    import torch

    from harness.core.config import TeacherConfig
    from teachers.hf import hf_tiny_teacher

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import context_vectors

    tiny = hf_tiny_teacher(TeacherConfig(), 2)
    tiny.save(tmp_path / "tiny")
    (tmp_path / "t.tsv").write_text("sentence\tlabel\nan unbelievably good film\t1\ngood\t1\nbad\t0\nunbelievably bad\t0\n")
    assert context_vectors.main(["--model", str(tmp_path / "tiny"), "--texts", str(tmp_path / "t.tsv"), "--layers",
                                 "1", "--out", str(tmp_path / "out"), "--batch", "2"]) == 0
    encoder, tok = tiny.model.bert.eval(), tiny.tokenizer

    def state(words: list[str], word: int) -> np.ndarray:
        enc = tok(words, is_split_into_words=True, return_tensors="pt")
        with torch.inference_mode():
            hidden = encoder(**enc, output_hidden_states=True).hidden_states[1][0].numpy()
        return hidden[[i for i, w in enumerate(enc.word_ids()) if w == word]].mean(0)

    assert len(tok.tokenize("unbelievably")) > 1  # a word of several pieces
    expected = {"unbelievably": (state(["an", "unbelievably", "good", "film"], 1) + state(["unbelievably", "bad"], 0)) / 2,
                "good": (state(["an", "unbelievably", "good", "film"], 2) + state(["good"], 0)) / 2}
    vectors, meta = initial_vectors(str(tmp_path / "out" / "layer_1.parquet"), ["<pad>", "unbelievably", "good"], 1, 0)
    np.testing.assert_allclose(vectors[1], expected["unbelievably"], atol=1e-5)
    np.testing.assert_allclose(vectors[2], expected["good"], atol=1e-5)
    assert meta["coverage"] == round(2 / 3, 4)  # padding is not in the file
    counts = pq.read_table(tmp_path / "out" / "layer_1.parquet").to_pydict()
    assert dict(zip(counts["word"], counts["count"])) == {"an": 1, "unbelievably": 2, "good": 2, "film": 1, "bad": 2}
    # --normalise: the same vectors, centred on the words' mean and scaled to a median length of 1
    assert context_vectors.main(["--model", str(tmp_path / "tiny"), "--texts", str(tmp_path / "t.tsv"), "--layers",
                                 "1", "--out", str(tmp_path / "norm"), "--batch", "2", "--normalise"]) == 0
    raw, norm = (np.stack(pq.read_table(tmp_path / d / "layer_1.parquet").column("vector").to_numpy(zero_copy_only=False))
                 for d in ("out", "norm"))
    centred = raw - raw.mean(0)
    np.testing.assert_allclose(norm, centred / np.median(np.linalg.norm(centred, axis=1)), atol=1e-5)
    assert np.median(np.linalg.norm(norm, axis=1)) == pytest.approx(1.0, abs=1e-5)
    assert np.abs(norm.mean(0)).max() < 1e-5 < np.abs(raw.mean(0)).max()
