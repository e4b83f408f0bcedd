"""The ``cast`` transform's conversions: the one rule of ``components._core.casts``, with microsecond UTC
datetimes. The polars engine uses the expressions; the duckdb and spark engines call ``arrow_cast`` (the same
rule on Arrow arrays) where their own SQL cannot reproduce it exactly."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import polars as pl
import pyarrow as pa

from components._core import casts
from components.ingestion.transforms import Cast, CastError

TIME_ZONE = "UTC"


def target(to: str) -> pl.DataType:
    """The polars dtype of a column cast to ``to`` (``int64``, ``float64``, ``string``, ``bool``, ``datetime``,
    ``date``)."""
    return casts.target_dtype(to, TIME_ZONE)


def cast_expr(name: str, src: pl.DataType, to: str) -> pl.Expr:
    """Column ``name`` (of dtype ``src``) converted to ``to``; null where a value does not convert losslessly."""
    return casts.cast(pl.col(name), src, to, time_zone=TIME_ZONE)


def failed_expr(name: str, src: pl.DataType, to: str) -> pl.Expr:
    """True where a non-null value of column ``name`` does not convert."""
    return casts.failed(pl.col(name), src, to, time_zone=TIME_ZONE)


def arrow_cast(src: pl.DataType | None, to: str, result: pa.DataType | None = None
               ) -> Callable[[pa.Array], pa.Array]:
    """A function converting an Arrow array by the rule (``src``: the polars dtype to read it as; None takes
    the array's own), returning an array of type ``result`` when given."""
    def convert(values: pa.Array) -> pa.Array:  # the hints tell Spark it is a scalar Arrow UDF
        series = pl.Series("v", values)
        dtype = series.dtype if src is None else src
        if series.dtype != dtype:
            series = series.cast(dtype)
        frame = pl.DataFrame([series]).with_columns(cast_expr("v", dtype, to).alias("out"))  # literals broadcast
        out = frame.get_column("out").to_arrow()
        return out.cast(result) if result is not None and out.type != result else out

    return convert


def raise_cast_failures(index: int, t: Cast, counts: Mapping[str, int], examples: Mapping[str, str | None]) -> None:
    """Raise ``CastError`` for the first failing column of a fail-mode cast."""
    for c, to in t.columns.items():
        if t.on_error == "fail" and counts.get(c, 0) > 0:
            raise CastError(index, t.op, f"column {c!r}: {counts[c]} value(s) cannot convert to {to}, e.g. "
                            f"{examples.get(c)!r} (use on_error='null' to null them)", column=c)
