"""Polars engine: lazy scan -> transforms -> streaming ``sink_parquet``, in one pass with the cast checks.

Sources are also resolved here for both engines (``open_table``): their files, format and polars schema, so a
malformed file is named before any work and Spark reads CSV / JSON lines with the very schema polars infers.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

from components._core.artifacts import (
    ArtifactError,
    TableFormat,
    atomic_target,
    data_files,
    filesystem,
    is_local,
    local_path,
)
from components.ingestion.transforms import (
    JOIN_SUFFIX,
    Aggregate,
    Cast,
    CastError,
    Dedupe,
    Derive,
    Filter,
    IngestError,
    Join,
    Rename,
    Select,
    Transform,
    TransformError,
)

INFER_ROWS = 10_000
PL_TYPES: dict[str, pl.DataType] = {
    "int64": pl.Int64(), "float64": pl.Float64(), "string": pl.String(), "bool": pl.Boolean(),
    "datetime": pl.Datetime("us", "UTC"), "date": pl.Date()}
BOOL_WORDS = {"true": True, "t": True, "yes": True, "y": True, "1": True,
              "false": False, "f": False, "no": False, "n": False, "0": False}
DT_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f",
              "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d")  # ISO 8601; without an offset a time is UTC
_ERRORS = (pl.exceptions.PolarsError, OSError, ValueError)
ROW = "__ingest_row"  # hidden input position, kept while a later dedupe may need it


@dataclass(frozen=True)
class Table:
    """A resolved source: its data files, their format and the polars schema of their union."""

    uri: str
    files: list[str]
    format: str
    schema: pl.Schema = field(compare=False)

    def scan(self) -> pl.LazyFrame:
        return scan_files(self.files, self.format, self.schema)


@dataclass(frozen=True)
class EngineRun:
    """What an engine reports back: row counts, output dtypes, per-column cast failures and, when it is not
    the one configured (the duckdb engine can hand a chain to polars), the engine that ran."""

    rows_in: int
    rows_out: int
    columns: dict[str, str]
    cast_failures: dict[str, int]
    engine: str | None = None


def scan_files(files: Sequence[str], fmt: str, schema: pl.Schema | None = None) -> pl.LazyFrame:
    """Lazily scan data files of one format (``schema`` fixes CSV / JSON-lines types instead of inferring)."""
    if fmt == "parquet":
        return pl.scan_parquet(list(files))
    if fmt == "csv":
        return pl.scan_csv(list(files), schema=schema, infer_schema_length=INFER_ROWS, try_parse_dates=False)
    return pl.scan_ndjson(list(files), schema=schema, infer_schema_length=INFER_ROWS)


def find_bad_file(files: Sequence[str], fmt: str, schema: pl.Schema | None) -> tuple[str, str] | None:
    """The first file that cannot be read alone (with ``schema`` when given) and why; None if all read."""
    for f in files:
        try:
            scan_files([f], fmt, schema if fmt != "parquet" else None).collect()
        except _ERRORS as err:
            return f, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return None


def open_table(uri: str, declared: TableFormat = "auto") -> Table:
    """Resolve a file or folder and read its schema; raise ``ArtifactError`` naming a malformed file."""
    files, fmt = data_files(uri, declared)
    try:
        schema = scan_files(files, fmt).collect_schema()
    except _ERRORS as err:
        bad = find_bad_file(files, fmt, None)
        where, why = bad if bad else (uri, f"{type(err).__name__}: {str(err).splitlines()[0]}")
        raise ArtifactError(f"malformed {fmt} file {where}: {why}") from None
    return Table(uri, files, fmt, schema)


def cast_expr(name: str, src: pl.DataType, to: str) -> pl.Expr:
    """Non-strict conversion of column ``name`` (null where a value cannot convert); strings are trimmed."""
    col, target = pl.col(name), PL_TYPES[to]
    if src == pl.String and to != "string":
        s = col.str.strip_chars()
        if to == "bool":
            return s.str.to_lowercase().replace_strict(BOOL_WORDS, default=None, return_dtype=pl.Boolean)
        stamps = [s.str.to_datetime(f, time_unit="us", time_zone="UTC", strict=False) for f in DT_FORMATS]
        if to == "datetime":
            return pl.coalesce(stamps)
        if to == "date":
            return pl.coalesce(s.str.to_date("%Y-%m-%d", strict=False), *(d.dt.date() for d in stamps))
        return s.cast(target, strict=False)
    if to == "datetime" and src.is_numeric():  # epoch seconds, as Spark's timestamp_seconds
        micros = (col.cast(pl.Float64) * 1_000_000).round().cast(pl.Int64, strict=False)
        return pl.from_epoch(micros, time_unit="us").dt.replace_time_zone("UTC")
    if to == "datetime" and isinstance(src, pl.Datetime):
        utc = col.dt.replace_time_zone("UTC") if src.time_zone is None else col.dt.convert_time_zone("UTC")
        return utc.dt.cast_time_unit("us")
    return col.cast(target, strict=False)


def _agg_expr(fn: str, column: str | None, name: str) -> pl.Expr:
    if column is None:
        return pl.len().cast(pl.Int64).alias(name)
    col = pl.col(column)
    exprs = {"sum": col.sum(), "mean": col.mean(), "min": col.min(), "max": col.max(),
             "count": col.count().cast(pl.Int64), "n_unique": col.drop_nulls().n_unique().cast(pl.Int64)}
    return exprs[fn].alias(name)


def apply(lf: pl.LazyFrame, t: Transform, schema: pl.Schema, right: Table | None = None) -> pl.LazyFrame:
    """One transform on a lazy frame whose current schema is ``schema`` (``ROW`` is kept while present)."""
    hidden = [ROW] if ROW in schema else []
    if isinstance(t, Select):
        return lf.select(*t.columns, *hidden)
    if isinstance(t, Rename):
        return lf.rename(t.mapping)
    if isinstance(t, Cast):
        return lf.with_columns(cast_expr(c, schema[c], to).alias(c) for c, to in t.columns.items())
    if isinstance(t, Derive):
        return lf.with_columns(pl.sql_expr(t.sql).alias(t.name))
    if isinstance(t, Filter):
        return lf.filter(pl.sql_expr(t.sql))
    if isinstance(t, Dedupe):
        order = [*(t.order_by or []), *hidden]
        if order:
            lf = lf.sort(order, nulls_last=False, maintain_order=True)
        return lf.unique(subset=t.keys, keep=t.keep, maintain_order=True)
    if isinstance(t, Join):
        assert right is not None
        other = right.scan()
        clash = {c: f"{c}{JOIN_SUFFIX}" for c in right.schema.names() if c not in t.on and c in schema}
        return lf.join(other.rename(clash), on=t.on, how=t.how, coalesce=True)
    assert isinstance(t, Aggregate)
    return lf.group_by(t.by).agg(_agg_expr(a.fn, a.column, a.name) for a in t.aggs)


def _failure_query(lf: pl.LazyFrame, t: Cast, schema: pl.Schema) -> pl.LazyFrame:
    """Per cast column: how many non-null values failed, and the first such value (as text)."""
    exprs = []
    for c, to in t.columns.items():
        bad = pl.col(c).is_not_null() & cast_expr(c, schema[c], to).is_null()
        exprs += [bad.sum().cast(pl.Int64).alias(f"n:{c}"), pl.col(c).filter(bad).first().cast(pl.String)
                  .alias(f"ex:{c}")]
    return lf.select(exprs)


def build(source: Table, transforms: Sequence[Transform], tables: Mapping[int, Table]
          ) -> tuple[pl.LazyFrame, list[tuple[int, Cast, pl.LazyFrame]]]:
    """The output plan and, per cast, a query counting its failures; type errors name the transform."""
    lf, checks = source.scan(), []
    if any(isinstance(t, Dedupe) for t in transforms):  # first / last follow input order, as in Spark
        lf = lf.with_row_index(ROW)
    schema = lf.collect_schema()
    for i, t in enumerate(transforms):
        if isinstance(t, Cast):
            checks.append((i, t, _failure_query(lf, t, schema)))
        lf = apply(lf, t, schema, tables.get(i))
        try:
            schema = lf.collect_schema()
        except _ERRORS as err:
            raise TransformError(i, t.op, str(err).splitlines()[0]) from None
    return (lf.drop(ROW) if ROW in schema else lf), checks


def raise_cast_failures(index: int, t: Cast, counts: Mapping[str, int],
                        examples: Mapping[str, str | None]) -> None:
    """Raise ``CastError`` for the first failing column of a fail-mode cast."""
    for c, to in t.columns.items():
        if t.on_error == "fail" and counts.get(c, 0) > 0:
            raise CastError(index, t.op, f"column {c!r}: {counts[c]} value(s) cannot convert to {to}, e.g. "
                            f"{examples.get(c)!r} (use on_error='null' to null them)", column=c)


def run(source: Table, transforms: Sequence[Transform], tables: Mapping[int, Table],
        output_uri: str) -> EngineRun:
    """Execute the chain and write one Parquet file at ``output_uri`` atomically."""
    out, checks = build(source, transforms, tables)
    failures: dict[str, int] = {}
    with atomic_target(output_uri) as tmp, tempfile.TemporaryDirectory(prefix="ingest-") as scratch:
        target = local_path(tmp) if is_local(tmp) else os.path.join(scratch, "out.parquet")
        try:  # the row count is a separate query: polars answers it from metadata / line counts
            rows_in = int(source.scan().select(pl.len()).collect().item())
            if checks:  # one pass: the sink and the cast checks share the scan
                results = pl.collect_all([out.sink_parquet(target, lazy=True), *(q for _, _, q in checks)])[1:]
            else:
                out.sink_parquet(target)
                results = []
        except _ERRORS as err:
            raise diagnose(err, [source, *tables.values()]) from None
        for (i, t, _), res in zip(checks, results, strict=True):
            row = res.row(0, named=True)
            counts = {c: int(row[f"n:{c}"] or 0) for c in t.columns}
            raise_cast_failures(i, t, counts, {c: row[f"ex:{c}"] for c in t.columns})
            for c, n in counts.items():
                failures[c] = failures.get(c, 0) + n
        written = pl.scan_parquet(target)
        rows_out = int(written.select(pl.len()).collect().item())
        columns = {k: str(v) for k, v in written.collect_schema().items()}
        if not is_local(tmp):
            fs, path = filesystem(tmp)
            fs.put(target, path)
    return EngineRun(rows_in, rows_out, columns, failures)


def diagnose(err: Exception, tables: Sequence[Table]) -> ValueError:
    """Turn an execution error into one naming the malformed file, when one file alone fails to read."""
    for table in tables:
        bad = find_bad_file(table.files, table.format, table.schema)
        if bad:
            return ArtifactError(f"malformed {table.format} file {bad[0]}: {bad[1]}")
    return IngestError(f"ingestion failed: {type(err).__name__}: {str(err).splitlines()[0]}")
