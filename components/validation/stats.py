"""Per-column statistics of a table, as a JSON-ready dict (no NaN/inf values: those become ``None``).

Every column: ``dtype``, ``count`` (rows), ``nulls``, ``null_share``, ``n_unique`` (nulls count as a value).
Numeric: ``min``, ``max``, ``mean``, ``std``, ``p50`` over finite values, plus ``nan`` and ``inf`` counts
(floats).
Strings: ``top`` (up to ``top_k`` most frequent values with counts). Booleans: ``true`` count.
Datetimes / dates: ``min`` and ``max`` as ISO strings.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import polars as pl

TOP_K = 10


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _is_text(dtype: pl.DataType) -> bool:
    return dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum)


def column_stats(df: pl.DataFrame, *, top_k: int = TOP_K) -> dict[str, dict[str, Any]]:
    """Statistics of every column of ``df`` (one pass of aggregations, one value count per string column)."""
    exprs: list[pl.Expr] = []
    for name, dtype in df.schema.items():
        c = pl.col(name)
        exprs += [c.null_count().alias(f"{name}\0nulls")]
        if not (dtype.is_nested() or dtype in (pl.Object, pl.Null)):
            exprs.append(c.n_unique().alias(f"{name}\0n_unique"))
        if dtype.is_numeric():
            x = c.cast(pl.Float64) if dtype.is_decimal() else c
            if dtype.is_float():
                exprs += [c.is_nan().sum().alias(f"{name}\0nan"), c.is_infinite().sum().alias(f"{name}\0inf")]
                x = c.filter(c.is_finite())
            f = x.cast(pl.Float64)
            exprs += [x.min().alias(f"{name}\0min"), x.max().alias(f"{name}\0max"),
                      f.mean().alias(f"{name}\0mean"), f.std().alias(f"{name}\0std"),
                      f.median().alias(f"{name}\0p50")]
        elif dtype == pl.Boolean:
            exprs.append(c.sum().alias(f"{name}\0true"))
        elif isinstance(dtype, pl.Datetime) or dtype == pl.Date:
            exprs += [c.min().alias(f"{name}\0min"), c.max().alias(f"{name}\0max")]
    row = df.select(exprs).row(0, named=True) if exprs else {}
    out: dict[str, dict[str, Any]] = {}
    rows = df.height
    for name, dtype in df.schema.items():
        stats: dict[str, Any] = {"dtype": str(dtype), "count": rows}
        for key, value in row.items():
            column, _, stat = key.partition("\0")
            if column == name:
                stats[stat] = _clean(value)
        stats["null_share"] = stats["nulls"] / rows if rows else 0.0
        if _is_text(dtype) and rows:
            counts = (df.get_column(name).drop_nulls().cast(pl.String).alias("value")
                      .value_counts(name="count").sort(["count", "value"], descending=[True, False])
                      .head(top_k))
            stats["top"] = [{"value": v, "count": int(n)} for v, n in counts.iter_rows()]
        out[name] = stats
    return out
