"""Declared transforms: one strict model per ``op``, combined in the discriminated union ``Transform``.

SQL strings (``derive``, ``filter``) are parsed with polars when the config is built, so a bad expression
fails at once; the same text runs through ``pl.sql_expr`` and Spark's ``F.expr``. ``check_chain`` follows
column names through a chain without reading data, so an unknown column fails before any work, naming the
transform's index, op and the column.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Sequence
from typing import Annotated, Literal

import polars as pl
from pydantic import AfterValidator, Field, model_validator

from components._core.artifacts import TableFormat
from components._core.config import StrictConfig

Name = Annotated[str, Field(min_length=1, max_length=256, description="column name")]
Names = Annotated[list[Name], Field(min_length=1, max_length=1000)]
DType = Literal["int64", "float64", "string", "bool", "datetime", "date"]
JOIN_SUFFIX = "_right"


class IngestError(ValueError):
    """Ingestion failed; the message says where and why."""


class TransformError(IngestError):
    """A transform cannot apply: names the transform's index, op and (when known) the column."""

    def __init__(self, index: int, op: str, message: str, column: str | None = None) -> None:
        self.index, self.op, self.column = index, op, column
        super().__init__(f"transform #{index} ({op}): {message}")


class CastError(TransformError):
    """A ``cast`` with ``on_error="fail"`` met a value it cannot convert."""


def sql_columns(sql: str) -> list[str]:
    """Column names an SQL expression reads (parsed by polars)."""
    return list(dict.fromkeys(pl.sql_expr(sql).meta.root_names()))


def _check_sql(sql: str) -> str:
    try:
        sql_columns(sql)
    except Exception as err:  # polars raises several types for parse errors
        raise ValueError(f"invalid SQL expression {sql!r}: {str(err).splitlines()[0]}") from None
    return sql


def _check_encoding(name: str) -> str:
    try:
        codecs.lookup(name)
    except LookupError:
        raise ValueError(f"unknown encoding {name!r} (Python codec names: utf-8, latin-1, cp1252, utf-16 ...)"
                         ) from None
    return name


Encoding = Annotated[str, Field(min_length=1, max_length=64, description="text encoding (a Python codec name)"),
                     AfterValidator(_check_encoding)]
Sql = Annotated[str, Field(min_length=1, max_length=10_000, description="SQL expression (polars and Spark)"),
                AfterValidator(_check_sql)]


class _Op(StrictConfig):
    def inputs(self) -> list[str]:
        """Columns this transform reads from its input."""
        raise NotImplementedError

    def outputs(self, columns: list[str], right: Sequence[str] = ()) -> list[str]:
        """Column names after the transform (``right``: the join table's columns)."""
        return columns


class Select(_Op):
    """Keep these columns, in this order."""

    op: Literal["select"] = "select"
    columns: Names = Field(description="columns to keep, in output order")

    def inputs(self) -> list[str]:
        return self.columns

    def outputs(self, columns: list[str], right: Sequence[str] = ()) -> list[str]:
        return list(self.columns)


class Rename(_Op):
    """Rename columns: ``{old: new}``."""

    op: Literal["rename"] = "rename"
    mapping: dict[Name, Name] = Field(min_length=1, max_length=1000, description="old name -> new name")

    def inputs(self) -> list[str]:
        return list(self.mapping)

    def outputs(self, columns: list[str], right: Sequence[str] = ()) -> list[str]:
        return [self.mapping.get(c, c) for c in columns]


class Cast(_Op):
    """Convert columns to dtypes; ``on_error``: an unconvertible value fails the step, or becomes null."""

    op: Literal["cast"] = "cast"
    columns: dict[Name, DType] = Field(min_length=1, max_length=1000, description="column -> target dtype")
    on_error: Literal["fail", "null"] = Field("fail", description="fail on a bad value, or null it and count")

    def inputs(self) -> list[str]:
        return list(self.columns)


class Derive(_Op):
    """Add (or replace) column ``name`` computed by an SQL expression, e.g. ``amount / n_items``."""

    op: Literal["derive"] = "derive"
    name: Name
    sql: Sql

    def inputs(self) -> list[str]:
        return sql_columns(self.sql)

    def outputs(self, columns: list[str], right: Sequence[str] = ()) -> list[str]:
        return columns if self.name in columns else [*columns, self.name]


class Filter(_Op):
    """Keep rows where the SQL predicate is true (null counts as false)."""

    op: Literal["filter"] = "filter"
    sql: Sql

    def inputs(self) -> list[str]:
        return sql_columns(self.sql)


class Dedupe(_Op):
    """Keep one row per key: the first or last by ``order_by`` (ascending, nulls first), else by row order."""

    op: Literal["dedupe"] = "dedupe"
    keys: Names = Field(description="columns that identify a row")
    order_by: list[Name] | None = Field(None, max_length=100, description="sort columns deciding first/last")
    keep: Literal["first", "last"] = Field("first", description="which row of each key to keep")

    def inputs(self) -> list[str]:
        return [*self.keys, *(self.order_by or [])]


class Join(_Op):
    """Join a second table (file or folder) on key columns; its clashing non-key columns get ``_right``."""

    op: Literal["join"] = "join"
    uri: str = Field(min_length=1, max_length=4096, description="path or URI of the table to join")
    on: Names = Field(description="key columns present in both tables")
    how: Literal["inner", "left"] = Field("inner", description="join type")
    format: TableFormat = Field("auto", description="format of the joined table")
    encoding: Encoding | None = Field(None, description="text encoding of the joined table (default: the "
                                                        "config's encoding)")

    def inputs(self) -> list[str]:
        return self.on

    def outputs(self, columns: list[str], right: Sequence[str] = ()) -> list[str]:
        extra = [c for c in right if c not in self.on]
        return [*columns, *(f"{c}{JOIN_SUFFIX}" if c in columns else c for c in extra)]


class Agg(StrictConfig):
    """One aggregate output column."""

    name: Name
    fn: Literal["sum", "mean", "min", "max", "count", "n_unique"] = Field(description="aggregate function")
    column: Name | None = Field(None, description="input column (optional for count: counts rows)")

    @model_validator(mode="after")
    def _needs_column(self) -> Agg:
        if self.column is None and self.fn != "count":
            raise ValueError(f"aggregate {self.name!r}: fn {self.fn!r} needs a column")
        return self


class Aggregate(_Op):
    """Group by ``by`` and compute ``aggs`` (sum of nothing is 0; count and n_unique skip nulls)."""

    op: Literal["aggregate"] = "aggregate"
    by: Names = Field(description="group key columns")
    aggs: list[Agg] = Field(min_length=1, max_length=1000, description="aggregates to compute")

    @model_validator(mode="after")
    def _unique_names(self) -> Aggregate:
        names = [*self.by, *(a.name for a in self.aggs)]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate output columns {dupes}")
        return self

    def inputs(self) -> list[str]:
        return [*self.by, *(a.column for a in self.aggs if a.column)]

    def outputs(self, columns: list[str], right: Sequence[str] = ()) -> list[str]:
        return [*self.by, *(a.name for a in self.aggs)]


Transform = Annotated[Select | Rename | Cast | Derive | Filter | Dedupe | Join | Aggregate,
                      Field(discriminator="op")]


def check_chain(transforms: Sequence[Transform], columns: Sequence[str],
                join_columns: Callable[[int, Join], Sequence[str]]) -> list[str]:
    """Follow column names through the chain (``join_columns(index, join)`` gives a joined table's columns);
    return the output columns or raise ``TransformError``."""
    cols = list(columns)
    for i, t in enumerate(transforms):
        for c in t.inputs():
            if c not in cols:
                raise TransformError(i, t.op, f"unknown column {c!r} (available: {cols})", column=c)
        right: Sequence[str] = ()
        if isinstance(t, Join):
            right = list(join_columns(i, t))
            for c in t.on:
                if c not in right:
                    raise TransformError(i, t.op, f"unknown column {c!r} in {t.uri} (available: {right})", c)
        out = t.outputs(cols, right)
        dupes = sorted({c for c in out if out.count(c) > 1})
        if dupes:
            raise TransformError(i, t.op, f"duplicate output columns {dupes}", column=dupes[0])
        cols = out
    return cols
