"""Source resolution for every engine: ``open_table`` lists a file or folder, counts its rows from the bytes or
Parquet footers, makes text files plain (decompressed, UTF-8, no blank lines) in the step's scratch folder when
they are not, and reads the polars schema, so all engines read the same files with the same schema.

Parquet files are counted from their footers, and a folder whose files disagree on the schema is refused,
naming the file and the column. CSV / JSON-lines files go through ``textfiles.count_text`` (see there for
compression, encodings, blank lines and malformed rows). A table that needs any file rewritten gets all its
files in one scratch folder, named in input order (local files linked, remote ones copied), so file order
stays the input order for every engine.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from components._core.artifacts import (
    COMPRESSION_SUFFIXES,
    ArtifactError,
    TableFormat,
    compression_of,
    data_files,
    filesystem,
    is_local,
    local_path,
)
from components.ingestion.textfiles import TextCount, codec_name, count_text
from components.ingestion.transforms import IngestError

INFER_ROWS = 10_000
READ_ERRORS = (pl.exceptions.PolarsError, OSError, ValueError)


@dataclass(frozen=True)
class SourceFile:
    """One data file: where it came from, what the engines read, and its rows counted from the file itself."""

    uri: str
    path: str  # the file the engines read: ``uri``, or its plain copy in the scratch folder
    rows: int  # records (CSV / JSON lines: counted from the bytes; Parquet: from the footer)
    blank_lines: int = 0  # skipped blank lines (text files)
    notes: tuple[str, ...] = ()  # what was done to make it plain: "gzip", "utf-16", "blank lines"


@dataclass(frozen=True)
class Table:
    """A resolved source: its data files, their format, the polars schema of their union."""

    uri: str
    sources: tuple[SourceFile, ...]
    format: str
    schema: pl.Schema = field(compare=False)
    multiline: bool = False  # a CSV field holds a line break (Spark must then parse whole files)

    @property
    def files(self) -> list[str]:
        """The files the engines read, in input order."""
        return [s.path for s in self.sources]

    @property
    def rows(self) -> int:
        """Records in the files, counted without the engines."""
        return sum(s.rows for s in self.sources)

    @property
    def blank_lines(self) -> int:
        return sum(s.blank_lines for s in self.sources)

    def scan(self) -> pl.LazyFrame:
        return scan_files(self.files, self.format, self.schema)


def scan_files(files: Sequence[str], fmt: str, schema: pl.Schema | None = None) -> pl.LazyFrame:
    """Lazily scan data files of one format (``schema`` fixes CSV / JSON-lines types instead of inferring)."""
    if fmt == "parquet":
        return pl.scan_parquet(list(files))
    if fmt == "csv":
        return pl.scan_csv(list(files), schema=schema, infer_schema_length=INFER_ROWS, try_parse_dates=False)
    return pl.scan_ndjson(list(files), schema=schema, infer_schema_length=INFER_ROWS)


def _reason(err: BaseException) -> str:
    text = str(err)
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


def first_bad_json_line(path: str) -> int | None:
    """The first line of a JSON-lines file that is not blank and not a JSON object, if any."""
    fs, p = filesystem(path)
    with fs.open(p, "rb") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    if not isinstance(json.loads(line), dict):
                        return n
                except ValueError:
                    return n
    return None


def find_bad_file(files: Sequence[str], fmt: str, schema: pl.Schema | None) -> tuple[str, str] | None:
    """The first file that cannot be read alone (with ``schema`` when given) and why; None if all read."""
    for f in files:
        try:
            scan_files([f], fmt, schema if fmt != "parquet" else None).collect()
        except READ_ERRORS as err:
            line = first_bad_json_line(f) if fmt == "jsonl" else None
            return f"{f}{f', line {line}' if line else ''}", _reason(err)
    return None


def diagnose(err: Exception, tables: Sequence[Table]) -> ValueError:
    """Turn an execution error into one naming the malformed file, when one file alone fails to read."""
    for table in tables:
        bad = find_bad_file(table.files, table.format, table.schema)
        if bad:
            return ArtifactError(f"malformed {table.format} file {bad[0]}: {bad[1]}")
    return IngestError(f"ingestion failed: {_reason(err)}")


def _parquet_sources(files: Sequence[str]) -> list[SourceFile]:
    """Row counts from the footers; every file must have the first one's columns and types."""
    sources, first = [], None
    for f in files:
        fs, path = filesystem(f)
        try:
            with fs.open(path, "rb") as fh:
                meta = pq.ParquetFile(fh)
                rows, schema = meta.metadata.num_rows, meta.schema_arrow
        except (pa.ArrowException, OSError) as err:
            raise ArtifactError(f"malformed parquet file {f}: {_reason(err)}") from None
        if first is None:
            first = (f, schema)
        else:
            _same_schema(first[0], first[1], f, schema)
        sources.append(SourceFile(f, f, rows))
    return sources


def _same_schema(ref: str, expected: pa.Schema, f: str, got: pa.Schema) -> None:
    for name in dict.fromkeys([*expected.names, *got.names]):
        if name not in got.names:
            raise ArtifactError(f"parquet file {f} lacks column {name!r} that {ref} has")
        if name not in expected.names:
            raise ArtifactError(f"parquet file {f} has column {name!r} that {ref} lacks")
        a, b = expected.field(name).type, got.field(name).type
        if a != b:
            raise ArtifactError(f"parquet file {f}: column {name!r} is {b}, but {a} in {ref}")
    if list(expected.names) != list(got.names):
        raise ArtifactError(f"parquet file {f}: columns in another order than in {ref} ({got.names} vs "
                            f"{expected.names})")


def _plain_name(uri: str, fmt: str, index: int) -> str:
    name = Path(uri).name
    if Path(name).suffix.lower() in COMPRESSION_SUFFIXES:
        name = Path(name).stem
    return f"{index:05d}-{Path(name).stem or 'part'}.{fmt}"


def _text_sources(files: Sequence[str], fmt: str, scratch: str, encoding: str) -> tuple[list[SourceFile], bool]:
    """Count every text file; rewrite the ones that are not plain UTF-8 without blank lines into a scratch
    folder (then the others are linked or copied there too, keeping input order)."""
    os.makedirs(scratch, exist_ok=True)
    folder = tempfile.mkdtemp(prefix=f"{fmt}-", dir=scratch)
    declared_utf8 = codec_name(encoding) == "utf-8"
    counts: list[TextCount] = []
    rewritten: list[bool] = []
    for i, f in enumerate(files):
        fs, path = filesystem(f)
        compression = compression_of(path, fs)
        out = os.path.join(folder, _plain_name(f, fmt, i))
        plain = compression is None and declared_utf8
        count = count_text(f, fmt, compression=compression, encoding=encoding, out_path=None if plain else out)
        if plain and (count.encoding != "utf-8" or count.mixed_line_ends or (fmt == "csv" and count.blank_lines)):
            count = count_text(f, fmt, encoding=encoding, out_path=out)  # rewrite: a BOM, blank or mixed lines
            plain = False
        if fmt == "csv" and counts and counts[0].columns != count.columns:
            raise ArtifactError(f"csv file {f} has the header {count.columns}, but {files[0]} has "
                                f"{counts[0].columns}")
        counts.append(count)
        rewritten.append(not plain)
    sources = []
    for i, (f, count, done) in enumerate(zip(files, counts, rewritten, strict=True)):
        notes = tuple([*count.notes, *(["blank lines"] if fmt == "csv" and count.blank_lines else []),
                       *(["mixed line ends"] if count.mixed_line_ends else [])])
        path = f
        if any(rewritten):
            path = os.path.join(folder, _plain_name(f, fmt, i))
            if not done:  # same folder as the rewritten files, so file order is the input order everywhere
                if is_local(f):
                    os.symlink(os.path.abspath(local_path(f)), path)
                else:
                    fs, remote = filesystem(f)
                    fs.get(remote, path)
        sources.append(SourceFile(f, path, count.records, count.blank_lines, notes))
    return sources, any(c.quoted_newlines for c in counts)


def open_table(uri: str, declared: TableFormat = "auto", *, scratch: str, encoding: str = "utf-8") -> Table:
    """Resolve a file or folder, count its rows and read its schema; text files that are compressed, not UTF-8
    or hold blank lines are made plain in ``scratch``. Raises ``ArtifactError`` naming a malformed file."""
    files, fmt = data_files(uri, declared)
    multiline = False
    if fmt == "parquet":
        sources = _parquet_sources(files)
    else:
        sources, multiline = _text_sources(files, fmt, scratch, encoding)
    paths = [s.path for s in sources]
    try:
        schema = scan_files(paths, fmt).collect_schema()
    except READ_ERRORS as err:
        bad = find_bad_file(paths, fmt, None)
        where, why = bad if bad else (uri, _reason(err))
        raise ArtifactError(f"malformed {fmt} file {where}: {why}") from None
    return Table(uri, tuple(sources), fmt, schema, multiline)
