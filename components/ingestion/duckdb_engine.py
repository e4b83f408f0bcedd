"""DuckDB engine: the whole chain as one SQL query (a CTE per transform), written by ``COPY ... TO`` Parquet.

Rows, dtypes, cast failure counts and errors follow the polars engine (``tests/unit/test_ingestion_duckdb.py``
checks them against each other):

* Sources are the tables ``sources.open_table`` resolved: CSV and JSON lines are read with the polars
  schema (no DuckDB sniffing), Parquet columns are cast to it. Every step's dtypes are the polars plan's
  (``plan_schemas``; derived and aggregate columns are cast to them), so the written schema is the polars
  engine's; datetimes are microsecond UTC (the session time zone is UTC).
* ``derive`` / ``filter`` SQL runs in DuckDB's dialect, so use the subset polars, Spark and DuckDB share
  (arithmetic, comparisons, ``CASE``, ``IN``, ``LIKE``, ``coalesce``, ``lower``, ``length`` ...); functions
  differ at the edges (``CAST(1.5 AS INT)`` rounds in DuckDB, truncates in polars; DuckDB has no ``initcap``).
  As in polars, ``/`` is true division, division by zero gives inf / NaN, and ``% 0`` is null. SQL DuckDB
  cannot bind fails before any work with a ``TransformError`` naming the transform.
* ``cast`` follows the one rule of ``components._core.casts``: text -> int64 / float64 / bool / date, ISO
  datetimes without an offset, and the numeric, boolean and midnight conversions are SQL mirroring it exactly
  (whitespace trimmed; ``"1.0"`` and ``"1e3"`` are int64, ``"1.5"`` is not; ``1_000`` is no number); every
  other value goes through the rule itself (polars) in a vectorised Arrow UDF. Failures are counted by one
  aggregate query per cast (an extra scan) before the write, so ``on_error="fail"`` raises before anything is
  written.
* Row account: the rows parsed and the rows out of each count-changing transform are counted by queries run
  before the write (``count(*)`` of the source is free for Parquet; counts at a cast's position ride on its
  check query), and the output appears only when the account adds up.
* ``dedupe`` follows input order (files in listed order, rows in file order) through ``row_number() OVER
  ()`` on the scan, which DuckDB numbers in scan order; nulls sort first, ties keep the earlier row.
* ``aggregate``: sum of nothing is 0, count and n_unique skip nulls, min / max skip NaN unless all are NaN.
* The output is one Parquet file (zstd level 1), rows in input order unless a join, dedupe or aggregate
  reorders them (as with polars, do not rely on the order then).

Falls back to the polars engine (logged, and reported as engine ``polars``) where DuckDB cannot give the same
result simply: a source or joined file that is not local (DuckDB would need its httpfs extension and its own
credentials; polars reads through fsspec), a path with glob characters, a dtype with no exact DuckDB
equivalent (categorical, duration, millisecond or non-UTC datetimes, fixed-size arrays, Null, Int128), or
column names that differ only in case (DuckDB identifiers are case-insensitive).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
from duckdb.func import FunctionNullHandling, PythonUDFType

from components._core import casts
from components._core.artifacts import atomic_target, filesystem, is_local, local_path
from components.ingestion import polars_engine
from components.ingestion.account import SOURCE, EngineRun, RowAccount, Settle, changes_count, counted_stages, joined
from components.ingestion.casting import arrow_cast, raise_cast_failures, target
from components.ingestion.sources import Table, diagnose
from components.ingestion.transforms import (
    JOIN_SUFFIX,
    Agg,
    Aggregate,
    Cast,
    Dedupe,
    Derive,
    Filter,
    Join,
    Rename,
    Select,
    Transform,
    TransformError,
)

log = logging.getLogger(__name__)
ROW = polars_engine.ROW  # hidden input position, kept while a later dedupe may need it
# Rust's char::is_whitespace, which polars' strip_chars() trims
WHITESPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
              "\u200a\u2028\u2029\u202f\u205f\u3000")
WHITESPACE_CLASS = "".join(f"\\x{{{ord(c):x}}}" for c in WHITESPACE)  # for an RE2 character class
INT_RE = r"[+-]?[0-9]+"  # what polars' non-strict string -> int64 cast accepts
FLOAT_RE = r"[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|(?i:inf|infinity|nan))"
# ISO dates and times polars and DuckDB read alike (years 1000-9999, no leap second or 24:00, <= 6 decimals)
DATE_RE = r"[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
ISO_RE = DATE_RE + r"([T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?)?"
INT64_LIMIT = "9223372036854775808.0"
GROUP_ROWS = "__ingest_group_rows"  # hidden count(*) of an aggregate's temp table: its groups' input rows
GLOB_CHARS = set("*?[")
POLARS_ERRORS = (pl.exceptions.PolarsError, OSError, ValueError)
_SIMPLE_TYPES: dict[type[pl.DataType], str] = {
    pl.Int8: "TINYINT", pl.Int16: "SMALLINT", pl.Int32: "INTEGER", pl.Int64: "BIGINT",
    pl.UInt8: "UTINYINT", pl.UInt16: "USMALLINT", pl.UInt32: "UINTEGER", pl.UInt64: "UBIGINT",
    pl.Float32: "FLOAT", pl.Float64: "DOUBLE", pl.String: "VARCHAR", pl.Boolean: "BOOLEAN", pl.Date: "DATE",
    pl.Time: "TIME_NS", pl.Binary: "BLOB"}
_DATETIME_TYPES = {("us", None): "TIMESTAMP", ("ns", None): "TIMESTAMP_NS", ("us", "UTC"): "TIMESTAMPTZ",
                   ("ns", "UTC"): "TIMESTAMPTZ_NS"}
_INTEGERS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)


class Unsupported(Exception):
    """The chain needs something this engine does not do exactly; the polars engine runs it instead."""


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def duck_type(dt: Any) -> str:
    """The DuckDB type that reads and writes as exactly this polars dtype (instance or class); ``Unsupported``
    if none."""
    if isinstance(dt, type):
        dt = dt()
    if isinstance(dt, pl.Datetime):
        if (dt.time_unit, dt.time_zone) in _DATETIME_TYPES:
            return _DATETIME_TYPES[(dt.time_unit, dt.time_zone)]
    elif isinstance(dt, pl.Decimal):
        if (dt.precision or 38) <= 38:
            return f"DECIMAL({dt.precision or 38},{dt.scale or 0})"
    elif isinstance(dt, pl.List):
        return f"{duck_type(dt.inner)}[]"
    elif isinstance(dt, pl.Struct):
        return "STRUCT(" + ", ".join(f"{ident(f.name)} {duck_type(f.dtype)}" for f in dt.fields) + ")"
    elif not dt.is_nested() and dt.base_type() in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[dt.base_type()]
    raise Unsupported(f"polars dtype {dt} has no exact DuckDB equivalent")


def _struct_literal(schema: pl.Schema) -> str:
    return "{" + ", ".join(f"{literal(n)}: {literal(duck_type(d))}" for n, d in schema.items()) + "}"


def scan_sql(table: Table) -> str:
    """A ``SELECT`` reading a resolved table with exactly its polars schema."""
    files = "[" + ", ".join(literal(local_path(f)) for f in table.files) + "]"
    if table.format == "parquet":
        cols = ", ".join(f"CAST({ident(n)} AS {duck_type(d)}) AS {ident(n)}" for n, d in table.schema.items())
        return f"SELECT {cols} FROM read_parquet({files}, hive_partitioning = false)"
    columns = _struct_literal(table.schema)
    if table.format == "csv":  # polars' CSV dialect: "" is an empty string, an empty field null
        return (f"SELECT * FROM read_csv({files}, columns = {columns}, header = true, auto_detect = false, "
                "delim = ',', quote = '\"', escape = '\"', allow_quoted_nulls = false, strict_mode = true, "
                "hive_partitioning = false)")
    return (f"SELECT * FROM read_json({files}, columns = {columns}, format = 'newline_delimited', "
            "auto_detect = false, hive_partitioning = false)")


def strip_sql(expr: str) -> str:
    """``expr`` without leading and trailing whitespace, as polars' ``strip_chars()``."""
    ws = f"[{WHITESPACE_CLASS}]"
    return (f"CASE WHEN regexp_matches({expr}, '^{ws}|{ws}$') THEN regexp_replace({expr}, '^{ws}+|{ws}+$', '', 'g') "
            f"ELSE {expr} END")


def _integral(expr: str) -> str:
    """SQL: a DOUBLE ``expr`` as BIGINT when it is integral, finite and within int64, else NULL (the rule)."""
    return (f"CASE WHEN isfinite({expr}) AND {expr} = floor({expr}) AND abs({expr}) < {INT64_LIMIT} "
            f"THEN CAST({expr} AS BIGINT) END")


def text_cast(text: str, to: str) -> str:
    """SQL converting stripped text (a column reference: it is used several times) by the cast rule.

    Exact for int64, float64 and bool. For date and datetime it covers the plain ISO forms only (no offset,
    seconds present): null there means "not this form", and the rule itself decides (``coalesce`` with the UDF).
    """
    if to == "bool":
        true = ", ".join(literal(w) for w in casts.TRUE_WORDS)
        false = ", ".join(literal(w) for w in casts.FALSE_WORDS)
        return f"CASE WHEN lower({text}) IN ({true}) THEN true WHEN lower({text}) IN ({false}) THEN false END"
    if to == "int64":  # [+-]digits, or a float literal with an integral value
        return (f"coalesce(CASE WHEN regexp_full_match({text}, {literal(INT_RE)}) THEN TRY_CAST({text} AS BIGINT) "
                f"END, CASE WHEN regexp_full_match({text}, {literal(FLOAT_RE)}) THEN "
                f"{_integral(f'TRY_CAST({text} AS DOUBLE)')} END)")
    pattern, convert = {"float64": (FLOAT_RE, f"TRY_CAST({text} AS DOUBLE)"),
                        "datetime": (ISO_RE, f"CAST(TRY_CAST({text} AS TIMESTAMP) AS TIMESTAMPTZ)"),
                        "date": (DATE_RE, f"TRY_CAST({text} AS DATE)")}[to]
    return f"CASE WHEN regexp_full_match({text}, {literal(pattern)}) THEN {convert} END"


def native_cast(expr: str, src: pl.DataType, to: str) -> str | None:
    """SQL converting a non-string ``expr`` exactly by the cast rule, or None when only the rule's UDF can."""
    if src == target(to):
        return expr
    integer = isinstance(src, _INTEGERS) or src == pl.Boolean
    number = isinstance(src, _INTEGERS) or src in (pl.Float32, pl.Float64)
    naive_or_utc = src in (pl.Datetime("us"), pl.Datetime("us", "UTC"))
    if to == "int64" and integer:
        return f"TRY_CAST({expr} AS BIGINT)"
    if to == "int64" and src.is_float():  # only integral values
        return _integral(f"CAST({expr} AS DOUBLE)")
    if to == "float64" and (integer or src == pl.Float32):
        return f"CAST({expr} AS DOUBLE)"
    if to == "string" and integer:
        return f"CAST({expr} AS VARCHAR)"
    if to == "bool" and number:  # the numbers 1 and 0 only
        return f"CASE WHEN {expr} = 1 THEN true WHEN {expr} = 0 THEN false END"
    if to == "datetime" and (src == pl.Date or naive_or_utc):
        return f"CAST({expr} AS TIMESTAMPTZ)"  # the session time zone is UTC
    if to == "date" and naive_or_utc:  # only at midnight
        return f"CASE WHEN {expr} = date_trunc('day', {expr}) THEN CAST({expr} AS DATE) END"
    return None


def _agg_sql(a: Agg, schema: pl.Schema, out: pl.DataType) -> str:
    if a.column is None:
        sql = "count(*)"
    else:
        col, dt = ident(a.column), schema[a.column]
        value = f"CAST({col} AS INTEGER)" if dt == pl.Boolean else col  # polars sums / averages booleans
        sql = {"sum": f"coalesce(sum({value}), 0)", "mean": f"avg({value})", "min": f"min({col})",
               "max": f"max({col})", "count": f"count({col})", "n_unique": f"count(DISTINCT {col})"}[a.fn]
        if a.fn == "max" and dt.is_float():  # polars skips NaN unless all values are NaN
            sql = f"coalesce(max({col}) FILTER (WHERE NOT isnan({col})), max({col}))"
    return f"CAST({sql} AS {duck_type(out)}) AS {ident(a.name)}"


@dataclass
class Check:
    """A query run before the write: per-column failures of a cast (count, example) and row counts."""

    cast: tuple[int, Cast] | None
    select: list[str]  # the cast's failure aggregates, then one count per key in ``counts``
    source: str  # the CTE it reads (a scalar check: the last CTE its subqueries need, or "")
    counts: list[str | int] = field(default_factory=list)  # account keys of the counts
    scalar: bool = False  # ``select`` holds scalar subqueries: one row, no FROM


@dataclass
class Query:
    """The chain as SQL: named CTEs, ``s0`` the source and ``s{i+1}`` the table after transform i."""

    ctes: list[tuple[str, str]]
    columns: list[str]
    checks: list[Check]
    udfs: dict[str, tuple[Callable[[pa.Array], pa.Array], str, str]]  # name -> function, parameter, result
    aggregates: dict[int, str] = field(default_factory=dict)  # index -> SQL of its temp table (with GROUP_ROWS)

    def upto(self, name: str, select: str = "*") -> str:
        """SQL selecting ``select`` from the CTE ``name``."""
        return f"{self.with_ctes(name)}\nSELECT {select} FROM {name}"

    def with_ctes(self, name: str) -> str:
        """The ``WITH`` clause defining the CTEs up to ``name``."""
        ctes = self.ctes[:[n for n, _ in self.ctes].index(name) + 1]
        return "WITH " + ",\n".join(f"{n} AS ({sql})" for n, sql in ctes)

    def check_sql(self, check: Check) -> str:
        """The SQL of a check."""
        if not check.scalar and check.source not in dict(self.ctes):  # a temp table
            return f"SELECT {', '.join(check.select)} FROM {check.source}"
        if not check.scalar:
            return self.upto(check.source, ", ".join(check.select))
        return f"{self.with_ctes(check.source) if check.source else ''}\nSELECT {', '.join(check.select)}"

    def output(self) -> str:
        return self.upto(self.ctes[-1][0], ", ".join(ident(c) for c in self.columns))

    def udf(self, expr: str, src: pl.DataType, to: str) -> str:
        """A call of the polars cast UDF for ``src`` -> ``to`` on ``expr``."""
        name = f"__ingest_cast_{to}_{duck_type(src)}"
        name = "".join(ch if ch.isalnum() else "_" for ch in name).lower()
        while name in self.udfs and self.udfs[name][1] != duck_type(src):  # same name from another type
            name += "_"
        self.udfs[name] = (arrow_cast(src, to), duck_type(src), duck_type(target(to)))
        return f"{name}({expr})"


def plan_schemas(source: Table, transforms: Sequence[Transform], tables: Mapping[int, Table]) -> list[pl.Schema]:
    """The polars schema before each transform and after the last; type errors name the transform."""
    lf = source.scan()
    schemas = [lf.collect_schema()]
    for i, t in enumerate(transforms):
        lf = polars_engine.apply(lf, t, schemas[-1], tables.get(i))
        try:
            schemas.append(lf.collect_schema())
        except POLARS_ERRORS as err:
            raise TransformError(i, t.op, str(err).splitlines()[0]) from None
    return schemas


def check_supported(source: Table, tables: Mapping[int, Table], schemas: Sequence[pl.Schema]) -> None:
    """Raise ``Unsupported`` when this engine cannot give exactly the polars engine's result."""
    for table in (source, *tables.values()):
        for f in table.files:
            if not is_local(f):
                raise Unsupported(f"{f} is not a local file")
            if GLOB_CHARS & set(local_path(f)):
                raise Unsupported(f"path {f} has glob characters")
    for schema in [*schemas, *(table.schema for table in tables.values())]:
        for dt in schema.dtypes():
            duck_type(dt)
        lower = [n.lower() for n in schema.names()]
        clash = sorted({n for n in schema.names() if lower.count(n.lower()) > 1})
        if clash:
            raise Unsupported(f"column names {clash} differ only in case")


def build(source: Table, transforms: Sequence[Transform], tables: Mapping[int, Table],
          schemas: Sequence[pl.Schema]) -> Query:
    """The SQL of the chain, given the polars schema at every stage (``plan_schemas``)."""
    ordered = any(isinstance(t, Dedupe) for t in transforms)
    row = f", row_number() OVER () AS {ident(ROW)}" if ordered else ""
    q = Query([("s0", f"SELECT *{row} FROM ({scan_sql(source)})")], list(schemas[0].names()), [], {})
    hidden = [ROW] if ordered else []
    for i, t in enumerate(transforms):
        before, after = schemas[i], schemas[i + 1]
        cols, prev = q.columns, f"s{i}"
        keep = [ident(c) for c in hidden]
        if isinstance(t, Select | Rename | Cast | Derive):
            exprs = {c: ident(c) for c in cols}
            if isinstance(t, Rename):
                exprs = {t.mapping.get(c, c): f"{ident(c)} AS {ident(t.mapping.get(c, c))}" for c in cols}
            elif isinstance(t, Cast):
                prev = _cast_stage(q, i, t, before, hidden)
                exprs.update({c: f"{ident(f'__ingest_cast_{n}')} AS {ident(c)}" for n, c in enumerate(t.columns)})
            elif isinstance(t, Derive):
                exprs[t.name] = f"CAST(({t.sql}) AS {duck_type(after[t.name])}) AS {ident(t.name)}"
            select = [exprs[c] for c in after.names()]
            sql = f"SELECT {', '.join([*select, *keep])} FROM {prev}"
        elif isinstance(t, Filter):
            sql = f"SELECT * FROM {prev} WHERE ({t.sql})"
        elif isinstance(t, Dedupe):
            first = t.keep == "first"
            order = [f"{ident(c)} {'ASC NULLS FIRST' if first else 'DESC NULLS LAST'}" for c in t.order_by or []]
            order += [f"{ident(c)} {'ASC' if first else 'DESC'}" for c in hidden]
            over = f"PARTITION BY {', '.join(ident(k) for k in t.keys)}"
            over += f" ORDER BY {', '.join(order)}" if order else ""
            sql = f"SELECT * FROM {prev} QUALIFY row_number() OVER ({over}) = 1"
        elif isinstance(t, Join):
            right = tables[i]
            extra = [c for c in right.schema.names() if c not in t.on]
            select = [f"l.{ident(c)}" for c in cols]
            select += [f"r.{ident(c)} AS {ident(f'{c}{JOIN_SUFFIX}' if c in cols else c)}" for c in extra]
            on = " AND ".join(f"l.{ident(k)} = r.{ident(k)}" for k in t.on)
            sql = (f"SELECT {', '.join([*select, *(f'l.{k}' for k in keep)])} FROM {prev} AS l "
                   f"{t.how.upper()} JOIN ({scan_sql(right)}) AS r ON {on}")
        else:
            assert isinstance(t, Aggregate)  # a temp table: its group sizes count the rows into it, for free
            hidden = []
            by = ", ".join(ident(c) for c in t.by)
            aggs = ", ".join(_agg_sql(a, before, after[a.name]) for a in t.aggs)
            q.aggregates[i] = q.upto(prev, f"{by}, {aggs}, count(*) AS {ident(GROUP_ROWS)}") + f" GROUP BY {by}"
            sql = f"SELECT {', '.join(ident(c) for c in after.names())} FROM {aggregate_table(i)}"
        q.ctes.append((f"s{i + 1}", sql))
        q.columns = list(after.names())
    _add_counts(q, source, transforms, tables)
    return q


def aggregate_table(index: int) -> str:
    """The temp table holding the output of the aggregate at ``index``."""
    return f"__ingest_aggregate_{index}"


def _add_counts(q: Query, source: Table, transforms: Sequence[Transform], tables: Mapping[int, Table]) -> None:
    """Count the rows the account needs: the parsed tables, and the output of each transform
    ``counted_stages`` names. A count rides on a later check when no count-changing transform lies between: a
    cast's check query, or an aggregate's group sizes. The others share as few scans as they can: a filter's
    output is ``count(*) FILTER (WHERE ...)`` over its input, which also counts that input."""
    at = {c.cast[0]: c for c in q.checks if c.cast}
    for a in q.aggregates:  # rows in: the group sizes; rows out: the groups
        at[a] = Check(None, [f"coalesce(sum({ident(GROUP_ROWS)}), 0)"], aggregate_table(a))
        if a in counted_stages(transforms):
            at[a].select.append("count(*)")
            at[a].counts.append(a)
        q.checks.append(at[a])
    rest: list[tuple[str | int, int]] = []  # counts of their own: account key, position (rows of CTE s{p})
    points: list[tuple[str | int, int]] = [(SOURCE, -1), *((i, i) for i in counted_stages(transforms))]
    for key, i in points:  # key: the account's; i: the transform whose output it counts (-1: the source)
        j = i + 1
        while j < len(transforms) and j not in at and not changes_count(transforms[j]):
            j += 1
        if j in at:  # rows into the cast or aggregate at j = rows out of transform i
            if at[j].cast:
                at[j].select.append("count(*)")
            at[j].counts.insert(0 if at[j].cast is None else len(at[j].counts), key)
        else:
            rest.append((key, i + 1))

    def segment(p: int) -> int:  # positions with equal row counts share a segment
        return sum(changes_count(t) for t in transforms[:p])

    def filtered(p: int) -> Filter | None:  # the filter whose output position p is
        t = transforms[p - 1] if p > 0 else None
        return t if isinstance(t, Filter) else None

    plain = {segment(p): (key, p) for key, p in rest if filtered(p) is None}
    if SOURCE in [key for key, _ in plain.values()] and source.format == "parquet":
        plain.pop(0)  # from the footers: cheaper alone than riding on a filter's scan
        q.checks.append(Check(None, [f"(SELECT count(*) FROM ({scan_sql(source)}))"], "", [SOURCE], scalar=True))
    scans: dict[int, Check] = {}  # by the position they read
    for key, p in sorted(rest, key=lambda kp: filtered(kp[1]) is None):  # filters first: plain counts join them
        f = filtered(p)
        if f is not None and segment(p - 1) in plain:  # one scan of the filter's input counts it and its output
            base, expr = p - 1, f"count(*) FILTER (WHERE ({f.sql}))"
        elif f is not None:  # pushed down into the scan
            base, expr = p, "count(*)"
        elif (key, p) in plain.values():
            base = next((b for b in scans if segment(b) == segment(p)), p)
            expr = "count(*)"
        else:
            continue  # the Parquet source's count, above
        check = scans.setdefault(base, Check(None, [], f"s{base}"))
        check.select.append(expr)
        check.counts.append(key)
    q.checks.extend(scans.values())
    if tables:
        q.checks.append(Check(None, [f"(SELECT count(*) FROM ({scan_sql(t)}))" for t in tables.values()], "",
                              [joined(i) for i in tables], scalar=True))


def _cast_stage(q: Query, i: int, t: Cast, schema: pl.Schema, hidden: Sequence[str]) -> str:
    """Add CTE ``c{i}``: the input plus ``__ingest_cast_{n}``, column n converted, each computed once; and the
    check counting per column the non-null values that fail and the first such value (as text)."""
    texts, converted, checks = [], [], []
    for n, (c, to) in enumerate(t.columns.items()):
        col, src, text = ident(c), schema[c], ident(f"__ingest_text_{n}")
        sql = native_cast(col, src, to)
        if sql is None and src == pl.String:
            texts.append(f"{strip_sql(col)} AS {text}")
            sql = text_cast(text, to)
            if to in ("date", "datetime"):
                sql = f"coalesce({sql}, {q.udf(col, src, to)})"
        converted.append(f"{sql or q.udf(col, src, to)} AS {ident(f'__ingest_cast_{n}')}")
        bad = f"{col} IS NOT NULL AND {ident(f'__ingest_cast_{n}')} IS NULL"
        example = f"CAST({col} AS VARCHAR)"
        example = f"arg_min({example}, {ident(ROW)})" if hidden else f"first({example})"
        checks += [f"count(*) FILTER (WHERE {bad})", f"{example} FILTER (WHERE {bad})"]
    source = f"(SELECT *, {', '.join(texts)} FROM s{i})" if texts else f"s{i}"
    q.ctes.append((f"c{i}", f"SELECT *, {', '.join(converted)} FROM {source}"))
    q.checks.append(Check((i, t), checks, f"c{i}"))
    return f"c{i}"


def _locate(con: duckdb.DuckDBPyConnection, q: Query, transforms: Sequence[Transform]) -> TransformError | None:
    """The first transform whose SQL does not bind (unknown function, type mismatch ...), if any."""
    for i, t in enumerate(transforms):
        try:
            con.execute("DESCRIBE " + (q.aggregates[i] if i in q.aggregates else q.upto(f"s{i + 1}")))
        except duckdb.Error as err:
            return TransformError(i, t.op, str(err).splitlines()[0])
    return None


def connect(scratch: str) -> duckdb.DuckDBPyConnection:
    """An in-memory connection: all cores, UTC, polars' division semantics, spilling into ``scratch``."""
    con = duckdb.connect(config={"threads": os.cpu_count() or 1})
    settings = ["enable_progress_bar = false", "TimeZone = 'UTC'", "ieee_floating_point_ops = true",
                "error_on_division_by_zero = false", f"temp_directory = {literal(os.path.join(scratch, 'spill'))}"]
    for setting in settings:
        con.execute(f"SET {setting}")
    return con


def count_files(table: Table) -> dict[str, int]:
    """Rows DuckDB reads from each file of a table alone (names the file when a table's total is off)."""
    with duckdb.connect() as con:
        return {s.path: int((con.execute(f"SELECT count(*) FROM ({scan_sql(dataclasses.replace(table, sources=(s,)))})")
                             .fetchone() or (0,))[0]) for s in table.sources}


def _run_checks(con: duckdb.DuckDBPyConnection, query: Query) -> tuple[dict[str, int], dict[str | int, int]]:
    """Run the checks: raise ``CastError`` for a fail-mode cast that fails; return failures and row counts."""
    failures: dict[str, int] = {}
    rows: dict[str | int, int] = {}
    for check in query.checks:
        row = con.execute(query.check_sql(check)).fetchone() or ()
        if check.cast:
            i, t = check.cast
            counts = {c: int(row[2 * n] or 0) for n, c in enumerate(t.columns)}
            raise_cast_failures(i, t, counts, {c: row[2 * n + 1] for n, c in enumerate(t.columns)})
            for c, k in counts.items():
                failures[c] = failures.get(c, 0) + k
        rows.update(zip(check.counts, (int(v) for v in row[len(row) - len(check.counts):]), strict=True))
    return failures, rows


def run(source: Table, transforms: Sequence[Transform], tables: Mapping[int, Table], output_uri: str,
        settle: Settle) -> tuple[EngineRun, RowAccount]:
    """Execute the chain with DuckDB and write one Parquet file at ``output_uri``; it appears only when the row
    account (``settle``) adds up."""
    schemas = plan_schemas(source, transforms, tables)
    try:
        check_supported(source, tables, schemas)
        query = build(source, transforms, tables, schemas)
    except Unsupported as why:
        log.warning("duckdb engine: %s; running the polars engine instead", why)

        def as_polars(result: EngineRun) -> RowAccount:
            return settle(dataclasses.replace(result, engine="polars"))

        result, account = polars_engine.run(source, transforms, tables, output_uri, as_polars)
        return dataclasses.replace(result, engine="polars"), account
    with atomic_target(output_uri) as tmp, tempfile.TemporaryDirectory(prefix="ingest-") as scratch, \
            connect(scratch) as con:
        for name, (fn, param, result_type) in query.udfs.items():
            con.create_function(name, fn, [param], result_type, type=PythonUDFType.ARROW,
                                null_handling=FunctionNullHandling.SPECIAL)
        target = local_path(tmp) if is_local(tmp) else os.path.join(scratch, "out.parquet")
        try:
            for i, sql in query.aggregates.items():  # the output reads them; checks count their groups
                con.execute(f"CREATE TEMP TABLE {aggregate_table(i)} AS {sql}")
            con.execute("DESCRIBE " + query.output())  # binds every step: SQL DuckDB cannot run fails here
            failures, rows = _run_checks(con, query)  # before writing: a failing cast leaves nothing behind
            con.execute(f"COPY ({query.output()}) TO {literal(target)} "
                        "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)")  # polars' speed and size
        except duckdb.Error as err:
            raise (_locate(con, query, transforms) or diagnose(err, [source, *tables.values()])) from None
        written = pl.scan_parquet(target)
        result = EngineRun(parsed={k: n for k, n in rows.items() if isinstance(k, str)},
                           stage_rows={k: n for k, n in rows.items() if isinstance(k, int)},
                           rows_out=int(written.select(pl.len()).collect().item()),
                           columns={k: str(v) for k, v in written.collect_schema().items()},
                           cast_failures=failures, engine="duckdb")
        account = settle(result)
        if not is_local(tmp):
            fs, path = filesystem(tmp)
            fs.put(target, path)
    return result, account
