"""Inferring a contract from a reference table, so that the next batch of the same source passes when it is clean.

Rules (each chosen so that later clean data does not trip them; ``InferOptions`` holds the knobs):

- **types**: the column's dtype, except that text columns whose every value is ISO 8601 become ``date``
  (``YYYY-MM-DD``) or ``datetime`` (``UTC`` when the text carries offsets or ``Z``, naive otherwise), and int /
  float columns with a time-like name (``*time*``, ``ts``, ``*_ts``, ``*_at``, ``*At``) whose every value is a
  plausible epoch in seconds (2000-01-01 to 2100-01-01 UTC) become UTC ``datetime``. Both through the one cast
  rule (``components._core.casts``), so validation converts exactly what was recognised here. Epochs in
  milliseconds fall outside the window and stay numbers.
- **nulls / non-finite**: ``nullable`` when the reference has nulls; floats ``finite`` unless it has NaN/inf.
- **categories**: only genuinely categorical columns get an ``allowed`` set: bool columns, and text columns that
  are not id-like by name (``id``, ``*_id``, ``key``, ``*_key``, ``*Id``, ``*uuid*``, ``*guid*``) with at most
  ``max_categories`` distinct values that are at most ``max_category_share`` of the non-null rows (otherwise
  nearly every value is new: free text or an identifier). Never for int, float or temporal columns.
- **numeric ranges** (``numeric_ranges``): ``off`` (default: none, since next month's maximum is rarely this
  month's), ``sign`` (min 0 where every reference value is >= 0), ``observed`` (min/max seen), or ``margin``
  (min/max widened by ``range_margin`` times the observed span on each side, never below 0 for a non-negative
  column; int bounds rounded outwards). Id-like columns never get ranges.
- **datetime/date ranges**: only with ``datetime_ranges`` (new data is usually later than its reference).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from typing import Any, Literal

import polars as pl
from pydantic import Field

from components._core import casts
from components._core.config import StrictConfig
from components.validation.contract import RESERVED_COLUMNS, TEMPORAL, ColumnRule, Contract, ContractError, DType

NumericRanges = Literal["off", "sign", "observed", "margin"]
EPOCH_WINDOW: tuple[float, float] = (datetime(2000, 1, 1, tzinfo=UTC).timestamp(),
                                     datetime(2100, 1, 1, tzinfo=UTC).timestamp())
_TIME_NAME = re.compile(r"time|(?:^|_)ts$|_at$", re.IGNORECASE)
_TIME_NAME_CAMEL = re.compile(r"[a-z0-9]At$")
_ID_NAME = re.compile(r"(?:^|_)(?:id|key)$|uuid|guid", re.IGNORECASE)
_ID_NAME_CAMEL = re.compile(r"[a-z0-9](?:Id|ID|Key)$")
_INT64 = 2**63


class InferOptions(StrictConfig):
    """How a contract is inferred from a reference table (see the module docstring for the rules)."""

    unique_keys: list[str] = Field(default_factory=list, max_length=64,
                                   description="columns whose combined values must be unique")
    max_categories: int = Field(50, ge=0, le=100_000,
                                description="text columns with at most this many distinct values may get an "
                                            "allowed set (0: no allowed sets)")
    max_category_share: float = Field(0.5, gt=0.0, le=1.0,
                                      description="text columns get an allowed set only when their distinct values "
                                                  "are at most this share of the non-null rows")
    numeric_ranges: NumericRanges = Field("off", description="numeric min/max: off, sign, observed or margin")
    range_margin: float = Field(0.1, ge=0.0, le=100.0,
                                description="numeric_ranges=margin: widening on each side, as a share of the "
                                            "observed span (max - min)")
    datetime_ranges: bool = Field(False, description="infer observed datetime/date min and max")


def is_time_name(name: str) -> bool:
    """Whether a column name hints at a point in time (``*time*``, ``ts``, ``*_ts``, ``*_at``, ``*At``)."""
    return bool(_TIME_NAME.search(name) or _TIME_NAME_CAMEL.search(name))


def is_id_name(name: str) -> bool:
    """Whether a column name marks an identifier (``id``, ``*_id``, ``key``, ``*_key``, ``*Id``, ``*uuid*``)."""
    return bool(_ID_NAME.search(name) or _ID_NAME_CAMEL.search(name))


def _logical_dtype(name: str, col: pl.Series) -> tuple[DType, str | None]:
    dtype = col.dtype
    if dtype.is_integer() or dtype.is_float() or dtype.is_decimal():
        return ("datetime", "UTC") if _is_epoch(name, col) else ("int" if dtype.is_integer() else "float", None)
    if dtype == pl.Boolean:
        return "bool", None
    if casts.is_text(dtype) or dtype == pl.Null:
        return casts.temporal_text(col) or ("string", None)
    if isinstance(dtype, pl.Datetime):
        return "datetime", dtype.time_zone
    if dtype == pl.Date:
        return "date", None
    raise ContractError(f"cannot infer a contract for column {name!r} of type {dtype}")


def _is_epoch(name: str, col: pl.Series) -> bool:
    if not is_time_name(name):
        return False
    values = col.drop_nulls().cast(pl.Float64)
    if values.len() == 0 or not values.is_finite().all():
        return False
    lo, hi = values.min(), values.max()
    assert isinstance(lo, float) and isinstance(hi, float)
    return EPOCH_WINDOW[0] <= lo and hi < EPOCH_WINDOW[1]


def _categories(name: str, logical: DType, col: pl.Series, opts: InferOptions) -> list[Any] | None:
    if opts.max_categories == 0 or logical not in ("string", "bool") or (logical == "string" and is_id_name(name)):
        return None
    values = col.drop_nulls()
    distinct = values.unique()
    if distinct.len() == 0 or distinct.len() > opts.max_categories:
        return None
    if logical == "string":
        if distinct.len() > opts.max_category_share * values.len():
            return None
        distinct = distinct.cast(pl.String)
    return sorted(distinct.to_list())


def _range(name: str, logical: DType, col: pl.Series, opts: InferOptions) -> dict[str, float | int]:
    if opts.numeric_ranges == "off" or logical not in ("int", "float") or is_id_name(name):
        return {}
    values = col.drop_nulls() if logical == "int" else col.cast(pl.Float64).filter(col.cast(pl.Float64).is_finite())
    if values.len() == 0:
        return {}
    lo, hi = values.min(), values.max()
    assert isinstance(lo, int | float) and isinstance(hi, int | float)
    if opts.numeric_ranges == "sign":
        return {"min": 0} if lo >= 0 else {}
    if opts.numeric_ranges == "margin":
        pad = opts.range_margin * ((hi - lo) or abs(lo))
        lo = max(0.0, lo - pad) if lo >= 0 else lo - pad
        hi = min(0.0, hi + pad) if hi <= 0 else hi + pad
    if logical == "float":
        return {"min": float(lo), "max": float(hi)}
    lo, hi = math.floor(lo), math.ceil(hi)
    return {"min": lo, "max": hi} if lo >= -_INT64 and hi < _INT64 else {}


def _iso(value: object) -> str:
    assert isinstance(value, datetime | date)
    return value.isoformat()


def _rule(name: str, col: pl.Series, opts: InferOptions) -> ColumnRule:
    logical, zone = _logical_dtype(name, col)
    fields: dict[str, object] = {"name": name, "dtype": logical, "nullable": col.null_count() > 0}
    if logical == "float":
        floats = col.cast(pl.Float64).drop_nulls()
        fields["finite"] = bool(floats.is_finite().all())
    fields.update(_range(name, logical, col, opts))
    fields["allowed"] = _categories(name, logical, col, opts)
    if logical in TEMPORAL:
        fields["time_zone"] = zone
        if opts.datetime_ranges:
            typed = col.to_frame().select(casts.cast(pl.col(name), col.dtype, logical, time_zone=zone)).to_series()
            if typed.drop_nulls().len():
                fields["min"], fields["max"] = _iso(typed.min()), _iso(typed.max())
    return ColumnRule.model_validate(fields)


def infer_contract(reference: pl.DataFrame, options: InferOptions | None = None, **fields: Any) -> Contract:
    """Infer a contract from ``reference`` by the module's rules; ``fields`` override ``options``
    (e.g. ``infer_contract(df, unique_keys=["id"], numeric_ranges="margin")``).

    Raises :class:`ContractError` for unknown unique keys, reserved or uninferable columns, and
    ``ConfigError`` naming a bad option.
    """
    opts = InferOptions.parse({**(options.model_dump() if options else {}), **fields})
    missing = [k for k in opts.unique_keys if k not in reference.columns]
    if missing:
        raise ContractError(f"unique_keys {missing} are not columns of the reference table")
    bad_names = [c for c in reference.columns if c in RESERVED_COLUMNS]
    if bad_names:
        raise ContractError(f"reference columns {bad_names} use names reserved for the quarantine output")
    rules = [_rule(name, reference.get_column(name), opts) for name in reference.columns]
    return Contract(columns=rules, unique_keys=list(opts.unique_keys))
