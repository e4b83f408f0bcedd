"""The one cast rule: how a value of one type becomes a value of a logical type, for every component.

Ingestion's ``cast`` transform (every engine) and validation's dtype check both convert through this module, so a
value that ingestion accepts is one validation accepts, and the other way round. The rule is **lossless**: a
value converts only when nothing of it is lost, otherwise the result is null (ingestion then fails or nulls it,
validation quarantines the row).

- int: text ``[+-]digits``, or a float literal with an integral value (``"1.0"``, ``"1e3"``); integers; floats only
  when integral, finite and within int64; booleans as 1 / 0.
- float: float literals (``1``, ``-2.5e3``, ``inf``, ``nan``); any number; booleans as 1.0 / 0.0.
- bool: the words ``true t yes y 1`` / ``false f no n 0`` (any case); the numbers 1 / 0 only.
- string: text as it is; numbers as decimal text; datetimes as ISO 8601.
- datetime: ISO 8601 text (``YYYY-MM-DD``, then ``T`` or a space and ``HH:MM[:SS[.ffffff]]``, then an optional
  ``Z`` / ``+HH:MM`` offset); numbers as epoch seconds (to the microsecond); dates at midnight; datetimes of
  another zone converted.
- date: ``YYYY-MM-DD`` text; datetimes at exactly midnight.

Text is trimmed of surrounding whitespace first. Naive datetimes (no offset) are read in the target zone; a
target zone of ``None`` keeps them naive.
Microsecond precision throughout.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

Logical = Literal["int", "float", "string", "bool", "datetime", "date"]
LOGICAL: tuple[Logical, ...] = ("int", "float", "string", "bool", "datetime", "date")
ALIASES: dict[str, Logical] = {"int64": "int", "float64": "float", "boolean": "bool", "str": "string"}
TRUE_WORDS: tuple[str, ...] = ("true", "t", "yes", "y", "1")
FALSE_WORDS: tuple[str, ...] = ("false", "f", "no", "n", "0")
BOOL_WORDS: dict[str, bool] = {**dict.fromkeys(TRUE_WORDS, True), **dict.fromkeys(FALSE_WORDS, False)}
INT64_LIMIT = 2.0**63
# Formats tried in order for text in a datetime column, after 'T' -> ' ' and 'Z' -> '+00:00'.
AWARE_FORMATS: tuple[str, ...] = ("%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%d %H:%M%z")
NAIVE_FORMATS: tuple[str, ...] = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d")
DATE_FORMAT = "%Y-%m-%d"


def logical(name: str) -> Logical:
    """The logical type named ``name`` (``int64`` / ``float64`` are accepted for ``int`` / ``float``)."""
    out = ALIASES.get(name, name)
    if out not in LOGICAL:
        raise ValueError(f"unknown type {name!r}; use one of {list(LOGICAL)}")
    return out


def target_dtype(to: str, time_zone: str | None = None) -> pl.DataType:
    """The polars dtype values of logical type ``to`` have after a cast."""
    kind = logical(to)
    if kind == "datetime":
        return pl.Datetime("us", time_zone)
    return {"int": pl.Int64(), "float": pl.Float64(), "string": pl.String(), "bool": pl.Boolean(),
            "date": pl.Date()}[kind]


def is_text(dtype: pl.DataType) -> bool:
    """Strings, categoricals and enums: converted by parsing their text."""
    return dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum)


def _integral(f: pl.Expr) -> pl.Expr:
    ok = f.is_finite() & (f == f.floor()) & (f.abs() < INT64_LIMIT)
    return pl.when(ok).then(f.cast(pl.Int64, strict=False))


def _text(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.String).str.strip_chars()


def to_int(expr: pl.Expr, src: pl.DataType) -> pl.Expr:
    """Lossless conversion to Int64 (null where a value is not an integer)."""
    if src.is_integer() or src == pl.Boolean or src == pl.Null:
        return expr.cast(pl.Int64, strict=False)
    if src.is_float() or src.is_decimal():
        return _integral(expr.cast(pl.Float64))
    if is_text(src):
        text = _text(expr)
        return pl.coalesce(text.cast(pl.Int64, strict=False), _integral(text.cast(pl.Float64, strict=False)))
    return pl.lit(None, dtype=pl.Int64)


def to_float(expr: pl.Expr, src: pl.DataType) -> pl.Expr:
    """Conversion to Float64 (null where a value is not a number)."""
    if src.is_numeric() or src == pl.Boolean or src == pl.Null:
        return expr.cast(pl.Float64, strict=False)
    if is_text(src):
        return _text(expr).cast(pl.Float64, strict=False)
    return pl.lit(None, dtype=pl.Float64)


def to_bool(expr: pl.Expr, src: pl.DataType) -> pl.Expr:
    """Conversion to Boolean: the words of ``BOOL_WORDS``, or the numbers 1 and 0."""
    if src == pl.Boolean or src == pl.Null:
        return expr.cast(pl.Boolean)
    if src.is_numeric():
        return pl.when(expr == 1).then(True).when(expr == 0).then(False).otherwise(None).cast(pl.Boolean)
    if is_text(src):
        return _text(expr).str.to_lowercase().replace_strict(BOOL_WORDS, default=None, return_dtype=pl.Boolean)
    return pl.lit(None, dtype=pl.Boolean)


def to_string(expr: pl.Expr, src: pl.DataType) -> pl.Expr:
    """Text of a value (datetimes and dates as ISO 8601)."""
    if isinstance(src, pl.Datetime):
        return expr.dt.to_string("%Y-%m-%dT%H:%M:%S%.f" + ("%:z" if src.time_zone else ""))
    return expr.cast(pl.String)


def localize(expr: pl.Expr, src_zone: str | None, zone: str | None) -> pl.Expr:
    """A microsecond datetime in ``src_zone`` (None: naive) brought to ``zone`` (naive values are read in it)."""
    if src_zone is not None:
        converted = expr.dt.convert_time_zone(zone or "UTC")
        return converted if zone else converted.dt.replace_time_zone(None)
    if zone is not None:
        return expr.dt.replace_time_zone(zone, ambiguous="null", non_existent="null")
    return expr


def normalize_datetime_text(text: pl.Expr) -> pl.Expr:
    """ISO 8601 text (a String expression) in the form the datetime formats read: trimmed, ``T`` → space, ``Z`` →
    ``+00:00``. Materialize it once when several parses read one column (polars recomputes shared inputs)."""
    return (text.str.strip_chars().str.replace(r"^(\d{4}-\d{2}-\d{2})[Tt]", "$1 ")
            .str.replace(r"[Zz]$", "+00:00"))


def _aware(norm: pl.Expr, zone: str | None) -> pl.Expr:
    return pl.coalesce(*[localize(norm.str.to_datetime(f, time_unit="us", time_zone="UTC", strict=False), "UTC",
                                  zone) for f in AWARE_FORMATS])


def parse_normalized_datetime(norm: pl.Expr, zone: str | None) -> pl.Expr:
    """Text from :func:`normalize_datetime_text` as a datetime in ``zone``; null when it is not ISO."""
    naive = [localize(norm.str.to_datetime(f, time_unit="us", strict=False), None, zone) for f in NAIVE_FORMATS]
    return pl.coalesce(_aware(norm, zone), *naive)


def parse_datetime_text(text: pl.Expr, zone: str | None) -> pl.Expr:
    """ISO 8601 text (already a String expression) as a datetime in ``zone``; null when it is not ISO."""
    return parse_normalized_datetime(normalize_datetime_text(text), zone)


def has_offset(norm: pl.Expr) -> pl.Expr:
    """True where text from :func:`normalize_datetime_text` carries a UTC offset (or carried ``Z``)."""
    return _aware(norm, "UTC").is_not_null()


TemporalText = tuple[Literal["datetime", "date"], str | None]
_SAMPLE = 1_000


def temporal_text(values: pl.Series) -> TemporalText | None:
    """The temporal type of a text column every non-null value of which converts by this rule, or None.

    ``("date", None)`` when every value is ``YYYY-MM-DD``; ``("datetime", "UTC")`` when every value is ISO 8601
    and at least one carries an offset (naive ones then read as UTC, as the rule does for a UTC target);
    ``("datetime", None)`` when none does. None for non-text columns, columns with no non-null value, and columns
    with any value that does not convert (a sample is tried first, so free text is rejected cheaply).
    """
    if not is_text(values.dtype):
        return None
    text = values.drop_nulls().cast(pl.String)
    if text.len() == 0:
        return None
    for part in (text.head(_SAMPLE), text) if text.len() > _SAMPLE else (text,):
        frame = part.to_frame("v").select(normalize_datetime_text(pl.col("v")).alias("n"), date=to_date(
            pl.col("v"), pl.String()).is_null().any())  # normalized once, read by every format below
        found = frame.select(datetime=parse_normalized_datetime(pl.col("n"), None).is_null().any(),
                             aware=has_offset(pl.col("n")).any(), date=pl.col("date").first()).row(0, named=True)
        if found["datetime"]:  # a value that is not even a datetime
            return None
    if not found["date"]:
        return "date", None
    aware = found["aware"]
    return "datetime", "UTC" if aware else None


def epoch_seconds(expr: pl.Expr, zone: str | None) -> pl.Expr:
    """Numbers as seconds since 1970-01-01 UTC (to the microsecond), in ``zone``."""
    micros = (expr.cast(pl.Float64) * 1_000_000).round()
    ok = micros.is_finite() & (micros.abs() < INT64_LIMIT)
    stamp = pl.from_epoch(pl.when(ok).then(micros.cast(pl.Int64, strict=False)), time_unit="us")
    return localize(stamp.dt.replace_time_zone("UTC"), "UTC", zone)


def to_datetime(expr: pl.Expr, src: pl.DataType, zone: str | None = None) -> pl.Expr:
    """Conversion to ``Datetime("us", zone)`` (see the module table)."""
    if isinstance(src, pl.Datetime):
        return localize(expr.dt.cast_time_unit("us"), src.time_zone, zone)
    if src == pl.Date or src == pl.Null:
        return localize(expr.cast(pl.Datetime("us")), None, zone)
    if is_text(src):
        return parse_datetime_text(expr.cast(pl.String), zone)
    if src.is_numeric() and src != pl.Boolean:
        return epoch_seconds(expr, zone)
    return pl.lit(None, dtype=pl.Datetime("us", zone))


def to_date(expr: pl.Expr, src: pl.DataType) -> pl.Expr:
    """Conversion to Date: ISO dates, or datetimes at exactly midnight."""
    if src == pl.Date or src == pl.Null:
        return expr.cast(pl.Date)
    if isinstance(src, pl.Datetime):
        return pl.when(expr.dt.truncate("1d") == expr).then(expr.dt.date())
    if is_text(src):
        return _text(expr).str.to_date(DATE_FORMAT, strict=False)
    return pl.lit(None, dtype=pl.Date)


def cast(expr: pl.Expr, src: pl.DataType, to: str, *, time_zone: str | None = None) -> pl.Expr:
    """``expr`` (of dtype ``src``) converted to logical type ``to`` by the one rule; null where it cannot.

    ``time_zone`` is the zone of the datetime result (ingestion uses ``"UTC"``; a contract its column's zone).
    """
    kind = logical(to)
    if src == target_dtype(kind, time_zone):
        return expr
    if kind == "int":
        return to_int(expr, src)
    if kind == "float":
        return to_float(expr, src)
    if kind == "string":
        return to_string(expr, src)
    if kind == "bool":
        return to_bool(expr, src)
    if kind == "datetime":
        return to_datetime(expr, src, time_zone)
    return to_date(expr, src)


def failed(expr: pl.Expr, src: pl.DataType, to: str, *, time_zone: str | None = None) -> pl.Expr:
    """True where a non-null value does not convert (the rows a cast would lose)."""
    return expr.is_not_null() & cast(expr, src, to, time_zone=time_zone).is_null()
