"""Data files that do not parse: each way a file can be broken is one line naming the file, the line
and the problem (small files made on the fly); duplicate rows are legal and counted; an explicit data
location is the only one looked in. Two runs through the command line stop before any training."""

from __future__ import annotations

import gzip
import re
import subprocess
from pathlib import Path

import pytest
from cli_runner import harness

from harness.core.errors import HarnessError
from harness.core.registry import TASKS
from harness.data import pair_tasks, tasks
from harness.data.tasks import NoData, load_task, nltk_roots, read_tsv

SST2, MNLI, QQP = TASKS.get("sst2"), TASKS.get("mnli"), TASKS.get("qqp")
QQP_HEADER = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"


def qqp_row(i: int, question1: str, question2: str, label: int = 0) -> str:
    return f"{i}\t{2 * i + 1}\t{2 * i + 2}\t{question1}\t{question2}\t{label}\n"


def qqp_text(n: int) -> str:
    """A Quora-layout file of n well-formed pairs."""
    return QQP_HEADER + "".join(qqp_row(i, f"What is {i}?", f"Why is {i}?", i % 2) for i in range(n))


def error(path: Path, task: object = SST2, require_labels: bool = True) -> str:
    """read_tsv's error message for `path`, checked to be one line."""
    with pytest.raises(HarnessError) as err:
        read_tsv(path, task, require_labels=require_labels)
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


def test_extra_field_names_line(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\ngood\t1\nbad\ttab\t0\nfine\t1\n")
    assert error(path) == f"{path}:3: 3 fields, the header has 2 (a tab inside a text?)"


def test_missing_field_names_line(tmp_path: Path) -> None:
    path = tmp_path / "dev.tsv"
    path.write_text("sentence1\tsentence2\tgold_label\na\tb\tneutral\nc\td\tneutral\ne\tneutral\n")
    assert error(path, MNLI) == f"{path}:4: 2 fields, the header has 3 (a missing field, or a line break inside a text?)"


def test_blank_line_is_not_skipped(tmp_path: Path) -> None:
    path = tmp_path / "dev.tsv"
    path.write_text("sentence1\tsentence2\tgold_label\na\tb\tneutral\n\nc\td\tneutral\n")
    assert error(path, MNLI) == f"{path}:3: empty line, where 3 fields are expected"


def test_non_utf8_bytes_name_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    data = b"sentence\tlabel\ngood\t1\nna\xefve \xff\t0\n"
    path.write_bytes(data)
    assert data.index(b"\xef") == 24  # from the start of the file, not of the line
    assert error(path) == f"{path}:3: bytes that are not UTF-8 at byte 24 (0xef)"


def test_empty_file_and_header_only(tmp_path: Path) -> None:
    empty, header = tmp_path / "empty.tsv", tmp_path / "header.tsv"
    empty.write_bytes(b"")
    header.write_text("sentence\tlabel\n")
    assert error(empty) == f"{empty}: empty file, no header line"
    assert error(header) == f"{header}:1: a header but no rows"


def test_crlf_is_read_and_a_bare_cr_is_an_error(tmp_path: Path) -> None:
    """Windows line ends are fine; a lone \\r (old Mac line ends, or one inside a text) is not."""
    path = tmp_path / "train.tsv"
    path.write_bytes(b"\xef\xbb\xbfsentence\tlabel\r\ngood\t1\r\nfine\t0")
    assert read_tsv(path, SST2, require_labels=True).texts == [("good",), ("fine",)]
    path.write_bytes(b"sentence\tlabel\ngood\t1\nbad\rworse\t0\n")
    assert error(path).startswith(f"{path}:3: a carriage return (\\r) not followed by a line feed")


def test_truncated_gzip_names_the_line_it_ends_in(tmp_path: Path) -> None:
    """Stored (uncompressed) deflate data, cut at a known byte: the file ends inside line 4; a
    compressed file that lost only its trailer ends after its last line."""
    path = tmp_path / "quora_pairs.tsv.gz"
    text = qqp_text(10).encode()
    whole = gzip.compress(text, compresslevel=0, mtime=0)
    header = 10 + 5  # gzip header, then one stored block's header
    cut = text.index(b"\n", text.index(b"\n", text.index(b"\n") + 1) + 1) + 5  # 5 bytes into line 4
    path.write_bytes(whole[: header + cut])
    assert error(path, QQP) == f"{path}: truncated gzip file (ends inside line 4)"
    path.write_bytes(gzip.compress(text)[:-8])
    assert error(path, QQP) == f"{path}: truncated gzip file (ends after line 11)"


def test_corrupt_gzip_is_named(tmp_path: Path) -> None:
    path = tmp_path / "quora_pairs.tsv.gz"
    data = bytearray(gzip.compress(qqp_text(10).encode()))
    data[-8] ^= 0xFF  # the CRC-32 of the content
    path.write_bytes(bytes(data))
    assert error(path, QQP) == f"{path}: not a valid gzip file (incorrect data check)"
    path.write_text(qqp_text(3))  # not compressed at all
    assert error(path, QQP) == f"{path}: not a valid gzip file (incorrect header check)"


def test_unbalanced_quote_does_not_merge_rows(tmp_path: Path) -> None:
    """Quoted fields are undone, but a quote that does not close on its line stops the read at that
    line (a CSV reader would swallow the following rows into one question)."""
    path = tmp_path / "quora_pairs.tsv"
    rows = [qqp_row(0, '"Is ""&"" ok?"', "Why?"), qqp_row(1, 'A "quoted" word?', "How?")]
    path.write_text(QQP_HEADER + "".join(rows))
    assert read_tsv(path, QQP, require_labels=True).texts == [('Is "&" ok?', "Why?"), ('A "quoted" word?', "How?")]
    path.write_text(QQP_HEADER + "".join([*rows, qqp_row(2, '"What is', "When?"), qqp_row(3, "Who?", 'Where"?')]))
    assert error(path, QQP) == f"{path}:4: unbalanced quote '\"What is\\tWhen?\\t0': a quoted field may not span lines"


def test_quoted_tab_and_text_after_quote(tmp_path: Path) -> None:
    """The Quora release has no quoted tab, so one is an error; so is text after a closing quote."""
    path = tmp_path / "quora_pairs.tsv"
    path.write_text(QQP_HEADER + qqp_row(0, "a?", "b?") + '1\t3\t4\t"one\ttwo"\tc?\t0\n')
    msg = error(path, QQP)
    assert msg.startswith(f"{path}:3: a tab inside the quoted field '\"one\\ttwo\"'") and "does not allow" in msg
    path.write_text(QQP_HEADER + qqp_row(0, '"a" b?', "c?"))
    assert error(path, QQP).startswith(f"{path}:2: text after the closing quote of '\"a\"'")


def test_quotes_are_text_in_glue_files(tmp_path: Path) -> None:
    """GLUE's files are unquoted: an unbalanced quote is text (MRPC's train has one)."""
    path = tmp_path / "dev.tsv"
    path.write_text('sentence1\tsentence2\tgold_label\n"Open\tshut"\tneutral\n')
    assert read_tsv(path, MNLI, require_labels=True).texts == [('"Open', 'shut"')]


@pytest.mark.parametrize(("task", "column"), [(QQP, "id"), (MNLI, "index")])
def test_duplicate_id_names_both_lines(tmp_path: Path, task: object, column: str) -> None:
    path = tmp_path / "pairs.tsv"
    if task is QQP:
        path.write_text(QQP_HEADER + qqp_row(7, "a?", "b?") + qqp_row(8, "c?", "d?") + qqp_row(7, "e?", "f?"))
    else:
        path.write_text("index\tsentence1\tsentence2\tgold_label\n7\ta\tb\tneutral\n8\tc\td\tneutral\n7\te\tf\tneutral\n")
    assert error(path, task) == f"{path}:4: duplicate {column} '7', already on line 2"


def test_repeated_header_column(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\tsentence\na\t1\tb\n")
    assert error(path) == f"{path}:1: column 'sentence' appears more than once in the header"


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text_names_line_and_column(tmp_path: Path, text: str) -> None:
    path = tmp_path / "dev.tsv"
    path.write_text(f"sentence1\tsentence2\tgold_label\na\tb\tneutral\nc\t{text}\tneutral\n")
    assert error(path, MNLI) == f"{path}:3: empty text in column 'sentence2'"


def test_qqp_empty_question_dropped_and_counted(tmp_path: Path) -> None:
    """The Quora file's known empty questions (Task.empty_texts) are dropped and counted by read_quora;
    the same row in any other file is an error."""
    folder = tmp_path / "QQP"
    folder.mkdir()
    text = qqp_text(pair_tasks.QQP_DEV_SIZE + 10) + qqp_row(99_999, "How?", " ") + qqp_row(100_000, "", "Why?")
    (folder / pair_tasks.QQP_FILE).write_bytes(gzip.compress(text.encode()))
    splits = load_task("qqp", tmp_path)
    assert len(splits["train"]) + len(splits["validation"]) == pair_tasks.QQP_DEV_SIZE + 10
    assert "2 pair(s) with an empty question dropped" in splits["train"].source
    other = tmp_path / "pairs.tsv.gz"
    other.write_bytes(gzip.compress(text.encode()))
    assert error(other, QQP) == f"{other}:{pair_tasks.QQP_DEV_SIZE + 12}: empty text in column 'question2'"


def test_duplicate_rows_are_counted_not_an_error(tmp_path: Path) -> None:
    """Rows repeating an earlier row's text and label are legal, counted by Split.duplicates (a repeated
    text with another label is not a duplicate row); counts follow head and take."""
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\ngood\t1\nbad\t0\ngood\t1\ngood\t0\nbad\t0\ngood\t1\n")
    split = read_tsv(path, SST2, require_labels=True)
    assert len(split) == 6 and split.duplicates() == 3
    assert split.head(3).duplicates() == 1 and split.take([0, 1, 3], "x").duplicates() == 0


def test_real_sst2_train_duplicates(data_root: Path) -> None:
    """GLUE's SST-2 train repeats 371 sentences; 366 of them with the same label."""
    assert load_task("sst2")["train"].duplicates() == 366


def test_explicit_data_dir_is_the_only_place(tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--data-dir without the task's training file is an error naming it and what it has, although
    ../shared/data has the task; the hub is not tried. NLTK's data is still looked for in the default."""
    assert (data_root / "SST-2" / "train.tsv").is_file()
    monkeypatch.delenv("HARNESS_DATA", raising=False)
    monkeypatch.setattr(tasks, "load_from_hub", lambda task: pytest.fail("the hub was tried"))
    (tmp_path / "SST-2").mkdir()
    (tmp_path / "SST-2" / "dev.tsv").write_text("sentence\tlabel\ngood\t1\n")
    with pytest.raises(NoData) as err:
        load_task("sst2", tmp_path)
    reason = f"no SST-2/train.tsv in --data-dir {tmp_path} ({tmp_path / 'SST-2'} has dev.tsv but no training file)"
    assert err.value.reason == reason  # display_path: absolute here, as tmp_path is far from the repository
    assert str(err.value).startswith(f"no data for task sst2: {reason}. Only the folder given is looked in")
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path))
    with pytest.raises(NoData, match=re.escape(f"in $HARNESS_DATA {tmp_path} (")):
        load_task("sst2")
    assert nltk_roots(tmp_path) == [tmp_path, tasks.default_data_dir()]


def bad_sst2_run(tmp_path: Path, train: bytes, dev: bytes | None = b"sentence\tlabel\ngood\t1\n") -> subprocess.CompletedProcess:
    """`run --preset smoke --tasks sst2` on a data folder holding only SST-2/ with these files."""
    folder = tmp_path / "data" / "SST-2"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_bytes(train)
    if dev is not None:
        (folder / "dev.tsv").write_bytes(dev)
    return harness("run", "--preset", "smoke", "--tasks", "sst2", "--data-dir", str(tmp_path / "data"),
                   "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), timeout=300)


def one_error_before_training(proc: subprocess.CompletedProcess, tmp_path: Path) -> str:
    """rc 2, exactly one `error:` line on stderr, no traceback, nothing trained; returns the line."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr and len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "== sst2" not in proc.stdout and not (tmp_path / "out" / "results.json").exists()
    return lines[0]


@pytest.mark.slow
def test_cli_extra_field_in_train(tmp_path: Path) -> None:
    train = b"sentence\tlabel\n" + b"".join(b"row %d\t%d\n" % (i, i % 2) for i in range(3)) + b"a\ttab\t1\n"
    line = one_error_before_training(bad_sst2_run(tmp_path, train), tmp_path)
    assert line == f"error: {tmp_path / 'data' / 'SST-2' / 'train.tsv'}:5: 3 fields, the header has 2 (a tab inside a text?)"


@pytest.mark.slow
def test_cli_non_utf8_dev(tmp_path: Path) -> None:
    dev = b"sentence\tlabel\ngood\t1\nbad \xe9t\xe9\t0\n"
    line = one_error_before_training(bad_sst2_run(tmp_path, b"sentence\tlabel\ngood\t1\n", dev), tmp_path)
    assert dev.index(b"\xe9") == 26
    assert line == f"error: {tmp_path / 'data' / 'SST-2' / 'dev.tsv'}:3: bytes that are not UTF-8 at byte 26 (0xe9)"


@pytest.mark.slow
def test_cli_data_dir_without_train_file(tmp_path: Path, data_root: Path) -> None:
    """The default ../shared/data has SST-2, but --data-dir names a folder without its train file."""
    folder = tmp_path / "data" / "SST-2"
    folder.mkdir(parents=True)
    (folder / "dev.tsv").write_text("sentence\tlabel\ngood\t1\n")
    proc = harness("run", "--preset", "smoke", "--tasks", "sst2", "--data-dir", str(tmp_path / "data"),
                   "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), timeout=300)
    line = one_error_before_training(proc, tmp_path)
    assert f"no SST-2/train.tsv in --data-dir {tmp_path / 'data'} ({folder} has dev.tsv but no training file)" in line
    assert "Hugging Face hub" not in proc.stdout
