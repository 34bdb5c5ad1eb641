"""A strict reader of tab-separated data files: every way a file can be broken is an error naming the
file (as given), the line and the problem, in one line.

The format it accepts:
- plain or gzip-compressed (`.gz`, one or more members); a truncated or corrupt gzip stream is an error.
- UTF-8, with an optional byte-order mark; other bytes are an error naming the line and byte offset.
- lines end with `\\n` or `\\r\\n` (the last line may lack it); a bare `\\r` is an error.
- every physical line is one row: no blank lines, and every row has as many fields as the header (or,
  in a file without a header, as the names the caller gives).
- fields are separated by tabs and kept verbatim. With `csv.QUOTE_NONE` (GLUE's files) quotes are plain
  text. With `csv.QUOTE_MINIMAL` (the Quora release) a field that starts with `"` is quoted: it ends at
  the next single `"`, which must end the field; `""` inside it stands for one `"`. A quoted field may
  not span lines, nor hold a tab: the Quora release, the only such file here, has neither (none of its
  13,310 lines with a quote has a quoted tab), so a quote that does not close on its line, or
  encloses a tab, is an unbalanced quote, not a field to merge rows into.

Texts and ids are checked on request (`Table.empty_texts`, `Table.check_unique`), since only the caller
knows which columns hold them.
"""

from __future__ import annotations

import csv
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import compress, count, repeat
from operator import not_
from pathlib import Path

from harness.core.errors import HarnessError

EXCERPT = 40  # characters of a text quoted in a message


def excerpt(text: str) -> str:
    """`text` cut to EXCERPT characters, for messages."""
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "..."


def gunzip(path: Path, data: bytes) -> bytes:
    """The decompressed content of a gzip file's bytes (every member).

    Raises:
        HarnessError: not gzip data, a failed check, or a stream that ends early (with the line it ends in).
    """
    out: list[bytes] = []
    while data:
        stream = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip header and trailer (CRC-32, length) checked
        try:
            out.append(stream.decompress(data))
            out.append(stream.flush())
        except zlib.error as e:
            reason = str(e).split(": ", 1)[-1]
            raise HarnessError(f"{path}: not a valid gzip file ({reason})") from None
        if not stream.eof:
            text = b"".join(out)
            lines = text.count(b"\n")
            where = f"after line {lines}" if text.endswith(b"\n") else f"inside line {lines + 1}"
            raise HarnessError(f"{path}: truncated gzip file (ends {where})")
        data = stream.unused_data.lstrip(b"\0")  # another member may follow; zero padding may end the file
    return b"".join(out)


def read_lines(path: Path) -> list[str]:
    """The lines of a text file (plain or .gz), decoded, without byte-order mark and line ends.

    Raises:
        HarnessError: missing or unreadable file, bad gzip data, bytes that are not UTF-8, a bare
            carriage return, or an empty file.
    """
    if not path.is_file():
        raise HarnessError(f"{path}: file not found")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise HarnessError(f"{path}: cannot be read ({e.strerror or e})") from None
    gz = path.suffix.lower() == ".gz"
    if gz and data:
        data = gunzip(path, data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        where = "of the decompressed text " if gz else ""
        hint = ": gzip data in a file whose name does not end in .gz?" if data.startswith(b"\x1f\x8b") else ""
        raise HarnessError(f"{path}:{line}: bytes that are not UTF-8 at byte {e.start} {where}(0x{data[e.start]:02x}){hint}"
                           ) from None
    text = text.removeprefix("\ufeff")
    if "\r" in text:
        if text.count("\r") != text.count("\r\n"):
            at = re.search("\r(?!\n)", text).start()
            raise HarnessError(f"{path}:{text.count(chr(10), 0, at) + 1}: a carriage return (\\r) not followed by a "
                               "line feed: lines must end with \\n or \\r\\n")
        text = text.replace("\r\n", "\n")
    if not text:
        raise HarnessError(f"{path}: empty file, no header line")
    lines = text.split("\n")  # not splitlines(): texts may hold \x0b, \x1c, \u2028 and the like
    if lines[-1] == "":
        lines.pop()
    return lines


def split_quoted(line: str, where: str) -> list[str]:
    """The fields of one line holding a `"`, quoted as the module docstring says (`where`: `path:line`)."""
    fields, pos, end = [], 0, len(line)
    while True:
        if line.startswith('"', pos):
            start, j = pos, pos + 1
            while True:
                k = line.find('"', j)
                if k < 0:
                    raise HarnessError(f"{where}: unbalanced quote {excerpt(line[start:])!r}: a quoted field may not span lines")
                if line.startswith('"', k + 1):
                    j = k + 2  # "" stands for one "
                    continue
                break
            value = line[start + 1 : k]
            if "\t" in value:
                raise HarnessError(f"{where}: a tab inside the quoted field {excerpt(line[start : k + 1])!r}, which the format "
                                   "does not allow (an unbalanced quote?)")
            if k + 1 < end and line[k + 1] != "\t":
                raise HarnessError(f"{where}: text after the closing quote of {excerpt(line[start : k + 1])!r} (a quote "
                                   'inside a quoted field must be doubled: "")')
            fields.append(value.replace('""', '"'))
            pos = k + 1
        else:
            k = line.find("\t", pos)
            fields.append(line[pos:] if k < 0 else line[pos:k])
            pos = end if k < 0 else k
        if pos >= end:
            return fields
        pos += 1  # past the tab
        if pos == end:
            fields.append("")
            return fields


def blank(values: Iterable[str]) -> list[int]:
    """The indices of the empty or all-whitespace strings among `values` (fast: no Python loop)."""
    return list(compress(count(), map(not_, map(str.strip, values))))


@dataclass
class Table:
    """A tab-separated file's fields as strings, column by column, every row as wide as the header.

    Attributes:
        path: the file as given, for messages.
        header: the column names (the file's first line, or the names given for a file without one).
        columns: each column's values, in `header` order, one per data row.
        first: the line number of the first data row (2 after a header line, 1 without).
    """

    path: Path
    header: list[str]
    columns: list[list[str]]
    first: int

    def column(self, name: str) -> list[str]:
        """Every row's value in column `name` (one of `header`)."""
        return self.columns[self.header.index(name)]

    def where(self, row: int) -> str:
        """`path:line` of a row."""
        return f"{self.path}:{row + self.first}"

    def empty_texts(self, names: Sequence[str]) -> list[int]:
        """The rows whose text in one of the columns `names` is empty or all whitespace, in order."""
        return sorted({i for name in names for i in blank(self.column(name))})

    def empty_text_error(self, row: int, names: Sequence[str]) -> HarnessError:
        """The error for an empty text in `row`, naming its column."""
        name = next(n for n in names if not self.column(n)[row].strip())
        return HarnessError(f"{self.where(row)}: empty text in column {name!r}")

    def check_unique(self, name: str) -> None:
        """Every value of column `name` (ids) differs; a repeat is an error naming both lines."""
        values = self.column(name)
        if len(set(values)) == len(values):
            return
        seen: dict[str, int] = {}
        for i, v in enumerate(values):
            if v in seen:
                raise HarnessError(f"{self.where(i)}: duplicate {name} {v!r}, already on line {seen[v] + self.first}")
            seen[v] = i


def read_table(path: Path, quoting: int, columns: Sequence[str] = (), known: Sequence[str] = ()) -> Table:
    """Read a tab-separated file strictly (see the module docstring): a header line, then the rows.

    Args:
        quoting: `csv.QUOTE_NONE` (quotes are text) or `csv.QUOTE_MINIMAL` (CSV-quoted fields).
        columns: names of the fields of a file without a header: used when given and the first line
            holds none of the names in `known` (CoLA's train and dev files).

    Raises:
        HarnessError: the first problem found, as `path:line: what` (or `path: what` for the whole file).
    """
    if quoting not in (csv.QUOTE_NONE, csv.QUOTE_MINIMAL):
        raise ValueError(f"quoting {quoting}: only csv.QUOTE_NONE and csv.QUOTE_MINIMAL are supported")
    lines = read_lines(path)
    if lines[0] == "":
        raise HarnessError(f"{path}:1: empty first line, where the header should be")
    first_row = split_quoted(lines[0], f"{path}:1") if quoting == csv.QUOTE_MINIMAL and '"' in lines[0] else lines[0].split("\t")
    if columns and not set(first_row) & set(known):
        header, first, expected = list(columns), 1, f"{len(columns)} expected in a file without a header"
    else:
        header, first, expected = first_row, 2, f"the header has {len(first_row)}"
        repeated = sorted({n for n in header if header.count(n) > 1})
        if repeated:
            raise HarnessError(f"{path}:1: column {repeated[0]!r} appears more than once in the header")
        if len(lines) == 1:
            raise HarnessError(f"{path}:1: a header but no rows")
    width, start = len(header), first - 1  # start: the index in `lines` of the first data row
    quoted: dict[int, list[str]] = {}  # line index -> fields, as many as the line's tabs + 1 (a quoted tab is an error)
    if quoting == csv.QUOTE_MINIMAL:  # checked first: a quote's error says more than a field count
        quoted = {i: split_quoted(line, f"{path}:{i + 1}") for i, line in enumerate(lines) if '"' in line}
    if set(map(str.count, lines, repeat("\t"))) != {width - 1}:  # fast: one count per line
        i = next(i for i in range(start, len(lines)) if lines[i].count("\t") != width - 1)
        if lines[i] == "":
            raise HarnessError(f"{path}:{i + 1}: empty line, where {width} fields are expected")
        n = lines[i].count("\t") + 1
        hint = "a tab inside a text?" if n > width else "a missing field, or a line break inside a text?"
        raise HarnessError(f"{path}:{i + 1}: {n} field{'s' * (n != 1)}, {expected} ({hint})")
    flat = "\t".join(lines[start:]).split("\t")  # row r's fields are flat[r * width : (r + 1) * width]
    for i, fields in quoted.items():
        if i >= start:
            flat[(i - start) * width : (i - start + 1) * width] = fields
    return Table(path, header, [flat[k::width] for k in range(width)], first)
