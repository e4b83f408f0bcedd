"""Text sources at the byte level: decompress, transcode to UTF-8, count records, check the CSV structure.

One streaming pass per file (16 MiB chunks, numpy over the bytes, no parsing) gives the record count the engines'
answers are checked against, and rejects what the engines would read differently:

* CSV records end at a ``\n`` outside double quotes (RFC 4180: ``""`` is a quote inside a quoted field), so a
  quoted field may hold line breaks; ``\r\n`` endings count like ``\n``. Blank lines (empty, or only ``\r``) are
  skipped and counted. Every other record must have the header's field count: a short or long row rejects the
  file, naming it and the line; so does a quote inside an unquoted field, or a quoted field left open. A
  duplicate column name in the header is rejected, naming the column.
* JSON lines: one record per line that is not blank (empty or whitespace only); blank lines are skipped and
  counted. Malformed JSON is left to the parser; the error names the file and the line.
* Bytes must be valid in the declared encoding (UTF-8 by default); a byte-order mark (UTF-8, UTF-16, UTF-32)
  decides the encoding. Invalid bytes reject the file, naming it and the line.

A file that is compressed, not UTF-8, starts with a byte-order mark, or holds blank CSV lines or CSV records ending
in both ``\r\n`` and ``\n`` is rewritten (once) as plain UTF-8, CSV records ending in ``\n`` without blank lines,
so every engine reads the same bytes.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, cast

import numpy as np
import pyarrow as pa

from components._core.artifacts import ArtifactError, filesystem

CHUNK = 1 << 24
MAX_RECORD = 1 << 28  # a record longer than this is an unclosed quote, not data
NEWLINE, QUOTE, COMMA, CR = 10, 34, 44, 13
WHITESPACE = np.array([9, 10, 11, 12, 13, 32], np.uint8)
FIELD_START = np.array([COMMA, NEWLINE], np.uint8)  # bytes a field's opening quote may follow
FIELD_END = np.array([COMMA, NEWLINE, CR], np.uint8)  # bytes a field's closing quote may precede
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


@dataclass
class TextCount:
    """What one pass over a text file found."""

    records: int = 0  # data records (CSV: without the header)
    blank_lines: int = 0
    quoted_newlines: bool = False  # a CSV field holds a line break
    columns: list[str] | None = None  # CSV header
    encoding: str = "utf-8"  # the encoding the file was read in
    notes: list[str] = field(default_factory=list)  # what was done to it: "gzip", "utf-16"
    line_ends: int = 0  # CSV records ending in a line break ...
    crlf_ends: int = 0  # ... of which \r\n

    @property
    def mixed_line_ends(self) -> bool:
        """Both \r\n and \n end CSV records (DuckDB cannot read such a file)."""
        return 0 < self.crlf_ends < self.line_ends


def codec_name(encoding: str) -> str:
    """Python's canonical name of an encoding (``latin-1`` -> ``iso8859-1``); ValueError if unknown."""
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None


def _decompressed(raw: IO[bytes], compression: str | None) -> IO[bytes]:
    if compression == "gzip":
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw))  # multi-member files too
    if compression == "zstd":
        return cast(IO[bytes], pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "zstd"))
    return raw


def _chunks(stream: IO[bytes], first: bytes) -> Iterator[bytes]:
    if first:
        yield first
    while chunk := stream.read(CHUNK):
        yield chunk


def _utf8_chunks(chunks: Iterator[bytes], encoding: str) -> Iterator[bytes]:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    for chunk in chunks:
        yield decoder.decode(chunk).encode("utf-8")
    yield decoder.decode(b"", final=True).encode("utf-8")


class _Lines:
    """Physical line numbers of positions in a stream of buffers (for error messages)."""

    def __init__(self) -> None:
        self.before = 0  # newlines before the current buffer

    def line(self, buf: bytes, pos: int) -> int:
        return self.before + buf.count(b"\n", 0, pos) + 1


class _Counter:
    """Feeds UTF-8 bytes in order; counts records, finds blank lines, checks the structure; optionally writes
    the bytes without blank lines to ``out``."""

    def __init__(self, name: str, fmt: str, out: IO[bytes] | None, check_utf8: bool) -> None:
        self.name, self.fmt, self.out, self.check_utf8 = name, fmt, out, check_utf8
        self.count = TextCount()
        self.lines = _Lines()
        self.carry = b""
        self.fields = 0  # CSV: commas a record must hold (columns - 1); set by the header
        self._newlines = np.zeros(0, np.int64)  # positions of every \n in the last buffer (for line numbers)
        self._quoted = False  # the last buffer holds a quote

    def feed(self, chunk: bytes) -> None:
        buf = self.carry + chunk if self.carry else chunk
        ends = self._ends(buf)
        if len(ends) == 0:
            if len(buf) > MAX_RECORD:
                self._unclosed(f"a record longer than {MAX_RECORD >> 20} MiB")
            self.carry = buf
            return
        last = int(ends[-1]) + 1
        self._records(buf, ends)
        self.lines.before += int(np.searchsorted(self._newlines, last))
        self.carry = buf[last:]

    def close(self) -> TextCount:
        if self.carry:  # a last record without a line break
            buf = self.carry + b"\n"
            ends = self._ends(buf)
            if len(ends) == 0:
                a = np.frombuffer(buf, np.uint8)
                self._check_quotes(buf, a, np.flatnonzero(a == QUOTE))  # a stray quote, rather than a field left open
                self._unclosed("the file ends inside it")
            self._records(buf, ends, trailing=True)
            self.carry = b""
        if self.fmt == "csv" and self.count.columns is None:
            raise ArtifactError(f"csv file {self.name} is empty: a CSV file needs a header line")
        return self.count

    def _unclosed(self, why: str) -> None:
        raise ArtifactError(f"malformed {self.fmt} file {self.name}, line {self.lines.before + 1}: a quoted field "
                            f"is not closed ({why})")

    def _ends(self, buf: bytes) -> np.ndarray:
        """Positions of record-ending newlines (CSV: outside quotes; the buffer starts at a record)."""
        a = np.frombuffer(buf, np.uint8)
        newlines = self._newlines = np.flatnonzero(a == NEWLINE)
        self._quoted = self.fmt == "csv" and b'"' in buf  # memchr: fast when there is none
        if not self._quoted:
            return newlines
        quotes = np.flatnonzero(a == QUOTE)
        inside = (np.searchsorted(quotes, newlines) & 1).astype(bool)
        if inside.any():
            self.count.quoted_newlines = True
        ends = newlines[~inside]
        if len(ends):
            self._check_quotes(buf, a, quotes[quotes < ends[-1]])
        return ends

    def _check_quotes(self, buf: bytes, a: np.ndarray, quotes: np.ndarray) -> None:
        """RFC 4180: a quote opens a field (after a comma or at a record's start), closes it (before a comma or the
        record's end), or is doubled inside it; any other quote rejects the file, naming the line."""
        opening = (np.arange(len(quotes)) & 1) == 0  # the buffer starts at a record, outside quotes
        before = a[np.maximum(quotes - 1, 0)]
        after = a[quotes + 1]  # every quote checked lies before a record end
        ok_open = (quotes == 0) | np.isin(before, FIELD_START) | ((before == QUOTE) & ~np.roll(opening, 1))
        ok_close = np.isin(after, FIELD_END) | ((after == QUOTE) & np.roll(opening, -1))
        bad = np.flatnonzero(np.where(opening, ~ok_open, ~ok_close))
        if len(bad):
            line = self.lines.line(buf, int(quotes[bad[0]]))
            raise ArtifactError(f"malformed csv file {self.name}, line {line}: a quote inside a field that is not "
                                "quoted (RFC 4180: a quoted field starts and ends with a quote and doubles the "
                                "quotes inside it)")

    def _blank(self, buf: bytes, ends: np.ndarray) -> np.ndarray:
        """Per record: is it blank? (CSV: empty or ``\\r``; JSON lines: whitespace only)."""
        a = np.frombuffer(buf, np.uint8)
        starts = np.concatenate(([0], ends[:-1] + 1))
        if self.fmt == "csv":
            length = ends - starts
            return (length == 0) | ((length == 1) & (a[np.maximum(ends - 1, 0)] == CR))
        # JSON lines: only records that start with whitespace (or are empty) can be blank
        blank = np.zeros(len(ends), bool)
        candidates = np.flatnonzero((starts == ends) | np.isin(a[np.minimum(starts, len(a) - 1)], WHITESPACE))
        for i in candidates.tolist():
            blank[i] = not buf[int(starts[i]):int(ends[i])].strip()
        return blank

    def _records(self, buf: bytes, ends: np.ndarray, trailing: bool = False) -> None:
        end = int(ends[-1]) + 1
        if self.check_utf8:
            self._check_utf8(buf, end)
        blank = self._blank(buf, ends)
        first, had_header = 0, self.count.columns is not None
        if self.fmt == "csv" and not had_header:
            first = self._header(buf, ends, blank)
        n_blank = int(blank.sum())
        self.count.blank_lines += n_blank
        self.count.records += len(ends) - n_blank - (1 if self.count.columns is not None and not had_header else 0)
        if self.fmt == "csv" and first < len(ends):
            self._check_fields(buf, ends, blank, first)
        cr = np.zeros(len(ends), bool)
        if self.fmt == "csv":
            real = ends[: len(ends) - 1] if trailing else ends  # the line break close() added is no record end
            cr[: len(real)] = (real > 0) & (np.frombuffer(buf, np.uint8)[np.maximum(real - 1, 0)] == CR)
            self.count.line_ends += len(real)
            self.count.crlf_ends += int(cr.sum())
        if self.out is not None:
            self._write(buf, ends, blank, cr, end - 1 if trailing else end)

    def _header(self, buf: bytes, ends: np.ndarray, blank: np.ndarray) -> int:
        """Read the header (the first record that is not blank); return the index of the record after it."""
        nonblank = np.flatnonzero(~blank)
        if len(nonblank) == 0:
            return len(ends)
        i = int(nonblank[0])
        start = 0 if i == 0 else int(ends[i - 1]) + 1
        text = buf[start:int(ends[i])].decode("utf-8").rstrip("\r")
        try:
            columns = next(csv.reader(io.StringIO(text), strict=True), [])
        except csv.Error as err:
            raise ArtifactError(f"csv file {self.name}: malformed header ({err})") from None
        seen: set[str] = set()
        for c in columns:
            if c in seen:
                raise ArtifactError(f"malformed csv file {self.name}: duplicate column name {c!r} in the header "
                                    f"(line {self.lines.line(buf, start)})")
            seen.add(c)
        self.count.columns, self.fields = columns, len(columns) - 1
        return i + 1

    def _check_fields(self, buf: bytes, ends: np.ndarray, blank: np.ndarray, first: int) -> None:
        """Every record that is not blank has the header's field count, else ``ArtifactError`` naming the line."""
        start = 0 if first == 0 else int(ends[first - 1]) + 1
        end = int(ends[-1]) + 1
        expected = self.fields * int((~blank[first:]).sum())
        a = np.frombuffer(buf, np.uint8)[start:end]
        if not self._quoted and np.count_nonzero(a == COMMA) == expected:
            return  # fast path; a short row hidden by a long one is still refused by every parser (long rows)
        commas = np.flatnonzero(a == COMMA)
        if self._quoted:
            quotes = np.flatnonzero(a == QUOTE)
            commas = commas[(np.searchsorted(quotes, commas) & 1) == 0]
            if len(commas) == expected:
                return
        records = ends[first:] - start
        per_record = np.diff(np.searchsorted(commas, records, side="right"), prepend=0)
        bad = np.flatnonzero((per_record != self.fields) & ~blank[first:])
        if len(bad) == 0:
            return
        i = first + int(bad[0])
        rec_start = 0 if i == 0 else int(ends[i - 1]) + 1
        found, kind = int(per_record[bad[0]]) + 1, "short" if per_record[bad[0]] < self.fields else "long"
        line = self.lines.line(buf, rec_start)
        raise ArtifactError(f"malformed csv file {self.name}, line {line}: {kind} row with {found} field(s), the "
                            f"header has {self.fields + 1}")

    def _check_utf8(self, buf: bytes, end: int) -> None:
        if buf.isascii():
            return
        try:
            buf[:end].decode("utf-8")
        except UnicodeDecodeError as err:
            line = self.lines.line(buf, err.start)
            raise ArtifactError(f"malformed {self.fmt} file {self.name}, line {line}: not valid UTF-8; set the "
                                "config's encoding (e.g. latin-1, cp1252, utf-16)") from None

    def _write(self, buf: bytes, ends: np.ndarray, blank: np.ndarray, cr: np.ndarray, end: int) -> None:
        """Write ``buf[:end]``; CSV without blank records and with \n record ends."""
        assert self.out is not None
        if self.fmt != "csv" or not (blank.any() or cr.any()):
            self.out.write(buf[:end])
            return
        drop = np.zeros(end + 1, np.int32)  # +1 where a dropped range starts, -1 after it ends
        starts = np.concatenate(([0], ends[:-1] + 1))[blank]
        np.add.at(drop, starts, 1)
        np.add.at(drop, np.minimum(ends[blank] + 1, end), -1)
        keep = np.cumsum(drop[:end]) == 0
        keep[ends[cr & ~blank] - 1] = False  # the \r of a \r\n record end
        self.out.write(np.frombuffer(buf, np.uint8, count=end)[keep].tobytes())


def count_text(path: str, fmt: str, *, compression: str | None = None, encoding: str = "utf-8",
               out_path: str | None = None) -> TextCount:
    """One pass over a CSV / JSON-lines file (local path or URI): decompress and transcode as needed, count
    records and blank lines, check the structure; with ``out_path``, write it there as plain UTF-8 (CSV: without
    blank lines, records ending in ``\n``). Raises ``ArtifactError`` naming the file (and line)."""
    fs, fpath = filesystem(path)
    chosen = encoding
    with fs.open(fpath, "rb") as raw:
        try:
            stream = _decompressed(raw, compression)
            first = stream.read(CHUNK)
            chosen = next((enc for bom, enc in BOMS if first.startswith(bom)), codec_name(encoding))
            utf8 = chosen == "utf-8"
            chunks: Iterator[bytes] = _chunks(stream, first)
            if not utf8:
                chunks = _utf8_chunks(chunks, chosen)
            sink: Any = open(out_path, "wb") if out_path else None  # noqa: SIM115 - closed below
            try:
                counter = _Counter(path, fmt, sink, check_utf8=utf8)
                for chunk in chunks:
                    counter.feed(chunk)
                result = counter.close()
            finally:
                if sink is not None:
                    sink.close()
        except UnicodeDecodeError as err:
            raise ArtifactError(f"{fmt} file {path}: not valid {chosen} ({err.reason}); set the config's "
                                "encoding") from None
        except (OSError, EOFError, pa.ArrowException) as err:
            what = f"{compression} data" if compression else "file"
            raise ArtifactError(f"cannot read {what} {path}: {type(err).__name__}: {err}") from None
    result.encoding = chosen
    result.notes = [n for n in (compression, None if utf8 else chosen) if n]
    return result
