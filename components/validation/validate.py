"""Row-level validation of a table against a :class:`Contract`, with a quarantine of the rows that fail.

Every check is a vectorized polars expression evaluated once over the whole table; reason strings are built
only for the failing rows. Values of the wrong input type (strings in a float column read from CSV, floats in
an int column, ...) are converted by the one cast rule (``components._core.casts``, shared with ingestion): a
value that does not convert is quarantined with its original value.

Semantics:
- one reason per failed check, ``'; '``-joined in contract column order, the duplicate-key reason last;
- range checks apply to finite values when ``finite`` holds (NaN/inf get their own reason), and never to NaN;
- unique keys compare the *cast* values of every row whose key values all converted (nulls compare equal); the
  first occurrence in input order stays valid (unless it fails another rule), later ones are quarantined.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from components._core import casts
from components.validation.contract import RESERVED_COLUMNS, ColumnRule, Contract, ContractError

ROW = "_row"
REASONS = "_reasons"
_IDX = "__vt_row"
_FIRST = "__vt_first"
_SHOWN_CHARS = 60
_ISO = "%Y-%m-%dT%H:%M:%S%.f"
_ARTICLE = {"int": "an", "float": "a", "string": "a", "bool": "a", "datetime": "a", "date": "a"}


@dataclass(frozen=True)
class ValidationOutcome:
    """One table split: valid rows (contract dtypes) and quarantined rows (original values + reasons)."""

    valid: pl.DataFrame
    quarantine: pl.DataFrame
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    reason_counts: dict[str, int] = field(default_factory=dict)

    @property
    def quarantine_share(self) -> float:
        """Quarantined rows over input rows (0 for an empty input)."""
        return self.rows_quarantined / self.rows_in if self.rows_in else 0.0


@dataclass(frozen=True)
class _Check:
    key: str  # "column:rule", the reason_counts key
    mask: pl.Expr  # true on failing rows (evaluated on the working frame; nulls count as pass)
    reason: pl.Expr  # reason text, evaluated on failing rows only


def _col_ref(i: int) -> str:
    return f"__vt_v{i}"


def _quote(expr: pl.Expr) -> pl.Expr:
    text = expr.cast(pl.String)
    short = pl.when(text.str.len_chars() > _SHOWN_CHARS).then(
        pl.concat_str(text.str.slice(0, _SHOWN_CHARS), pl.lit("..."))).otherwise(text)
    return pl.concat_str(pl.lit("'"), short, pl.lit("'"))


def _show(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A value as reason text: strings quoted, datetimes ISO, numbers as polars prints them."""
    if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
        return _quote(expr)
    if isinstance(dtype, pl.Datetime):
        return expr.dt.to_string(_ISO + ("%:z" if dtype.time_zone else ""))
    return expr.cast(pl.String)


def _unusable(dtype: pl.DataType) -> bool:
    return dtype.is_nested() or dtype in (pl.Binary, pl.Object) or isinstance(dtype, pl.Object | pl.Duration)


def _target(rule: ColumnRule) -> pl.DataType:
    return casts.target_dtype(rule.dtype, rule.time_zone)


def _same_type(rule: ColumnRule, src: pl.DataType) -> bool:
    return src == _target(rule) or (src == pl.Null)


def _norm_ref(i: int) -> str:
    return f"__vt_n{i}"


def _parses_text_datetime(rule: ColumnRule, src: pl.DataType) -> bool:
    return rule.dtype == "datetime" and casts.is_text(src)


def _normalize(i: int, rule: ColumnRule) -> pl.Expr:
    """Datetime text normalized once (every ISO format of the cast rule reads it; ~2x faster on 1M rows)."""
    return casts.normalize_datetime_text(pl.col(rule.name).cast(pl.String)).alias(_norm_ref(i))


def _cast(i: int, rule: ColumnRule, src: pl.DataType) -> pl.Expr:
    if _parses_text_datetime(rule, src):
        return casts.parse_normalized_datetime(pl.col(_norm_ref(i)), rule.time_zone)
    return casts.cast(pl.col(rule.name), src, rule.dtype, time_zone=rule.time_zone)


def _bound_lit(rule: ColumnRule, value: object) -> pl.Expr:
    return pl.lit(value, dtype=_target(rule)) if rule.dtype in ("datetime", "date") else pl.lit(value)


def _column_checks(i: int, rule: ColumnRule, src: pl.DataType) -> list[_Check]:
    name, o, v = rule.name, pl.col(rule.name), pl.col(_col_ref(i))
    target = _target(rule)
    checks: list[_Check] = []

    def add(rule_name: str, mask: pl.Expr, reason: Callable[[], pl.Expr]) -> None:
        checks.append(_Check(f"{name}:{rule_name}", mask, pl.concat_str(pl.lit(f"{name}: "), reason())))

    if not _same_type(rule, src):
        add("dtype", o.is_not_null() & v.is_null(),
            lambda: pl.concat_str(_show(o, src), pl.lit(f" is not {_ARTICLE[rule.dtype]} {rule.dtype}")))
    if not rule.nullable:
        add("null", o.is_null(), lambda: pl.lit("null not allowed"))
    rangeable = v
    if rule.dtype == "float":
        if rule.finite:
            add("nan", v.is_nan(), lambda: pl.lit("NaN not allowed"))
            add("inf", v.is_infinite(), lambda: pl.concat_str(v.cast(pl.String), pl.lit(" not allowed")))
            rangeable = pl.when(v.is_finite()).then(v)
        else:
            rangeable = pl.when(~v.is_nan()).then(v)
    lower, upper = rule.lower_bound(), rule.upper_bound()
    shown = _show(v, target)
    if lower is not None:
        add("min", rangeable < _bound_lit(rule, lower),
            lambda: pl.concat_str(shown, pl.lit(f" < min {_show_bound(rule.min)}")))
    if upper is not None:
        add("max", rangeable > _bound_lit(rule, upper),
            lambda: pl.concat_str(shown, pl.lit(f" > max {_show_bound(rule.max)}")))
    if rule.allowed is not None:
        values = pl.Series(rule.allowed, dtype=target)
        add("allowed", v.is_not_null() & ~v.is_in(values.implode()),
            lambda: pl.concat_str(shown, pl.lit(" not in allowed")))
    return checks


def _show_bound(bound: object) -> str:
    return bound.isoformat() if isinstance(bound, datetime) else str(bound)


def _key_check(contract: Contract, columns: list[str], failed_cast: list[pl.Expr]) -> tuple[_Check, pl.Expr]:
    keys = contract.unique_keys
    refs = [pl.col(_col_ref(columns.index(k))) for k in keys]
    converted = ~pl.any_horizontal(failed_cast) if failed_cast else pl.lit(True)
    first = pl.when(converted).then(pl.col(_IDX)).min().over(refs).alias(_FIRST)
    shown = ", ".join(keys)
    check = _Check(
        f"{'+'.join(keys)}:unique",
        converted & (pl.col(_IDX) != pl.col(_FIRST)),
        pl.concat_str(pl.lit(f"duplicate key ({shown}) first at row "), pl.col(_FIRST).cast(pl.String)),
    )
    return check, first


def check_columns(df: pl.DataFrame | pl.LazyFrame, contract: Contract) -> None:
    """Schema-level checks; raise :class:`ContractError` naming every missing / extra / unusable column."""
    schema = df.collect_schema() if isinstance(df, pl.LazyFrame) else df.schema
    reserved = [c for c in schema if c in RESERVED_COLUMNS]
    if reserved:
        raise ContractError(f"input columns {reserved} use names reserved for the quarantine output")
    missing = [c for c in contract.names if c not in schema]
    if missing:
        raise ContractError(f"missing contract columns: {missing} (input has {list(schema)})")
    extra = [c for c in schema if c not in contract.names]
    if extra and not contract.allow_extra_columns:
        raise ContractError(f"extra columns not allowed by the contract: {extra}")
    unusable = [f"{c} ({schema[c]})" for c in contract.names if _unusable(schema[c])]
    if unusable:
        raise ContractError(f"columns of a type no contract dtype accepts: {unusable}")


def validate_table(df: pl.DataFrame, contract: Contract) -> ValidationOutcome:
    """Split ``df`` into valid rows (cast to the contract dtypes, contract columns first, then extras) and a
    quarantine (original values of the failing rows plus ``_row`` and ``_reasons``).

    Raises :class:`ContractError` for schema-level problems (missing / extra / reserved / unusable columns).
    """
    contract = Contract.parse(contract)
    check_columns(df, contract)
    schema = df.schema
    names = contract.names
    checks: list[_Check] = []
    failed_cast: dict[str, pl.Expr] = {}
    for i, rule in enumerate(contract.columns):
        column_checks = _column_checks(i, rule, schema[rule.name])
        checks.extend(column_checks)
        for c in column_checks:
            if c.key == f"{rule.name}:dtype":
                failed_cast[rule.name] = c.mask
    extra_windows: list[pl.Expr] = []
    if contract.unique_keys:
        key_check, first = _key_check(contract, names, [failed_cast[k] for k in contract.unique_keys
                                                         if k in failed_cast])
        checks.append(key_check)
        extra_windows.append(first)

    masks = [f"__vt_m{j}" for j in range(len(checks))]
    normalized = [_normalize(i, rule) for i, rule in enumerate(contract.columns)
                  if _parses_text_datetime(rule, schema[rule.name])]
    start = df.lazy().with_row_index(_IDX)
    work = (
        (start.with_columns(normalized) if normalized else start)
        .with_columns(_cast(i, rule, schema[rule.name]).alias(_col_ref(i))
                      for i, rule in enumerate(contract.columns))
        .with_columns(extra_windows)
        .with_columns(c.mask.fill_null(False).alias(m) for c, m in zip(checks, masks, strict=True))
        .with_columns((pl.any_horizontal(masks) if masks else pl.lit(False)).alias("__vt_bad"))
        .collect()
    )
    extras = [c for c in df.columns if c not in names]
    valid = work.filter(~pl.col("__vt_bad")).select(
        *[pl.col(_col_ref(i)).alias(n) for i, n in enumerate(names)], *extras)
    bad = work.filter(pl.col("__vt_bad"))
    reasons = pl.concat_str([pl.when(pl.col(m)).then(c.reason) for c, m in zip(checks, masks, strict=True)],
                            separator="; ", ignore_nulls=True) if checks else pl.lit("")
    quarantine = bad.select(pl.col(_IDX).cast(pl.Int64).alias(ROW), reasons.alias(REASONS), *df.columns)
    counts = work.select(pl.col(m).sum() for m in masks).row(0) if masks else ()
    reason_counts = {c.key: int(n) for c, n in zip(checks, counts, strict=True) if n}
    outcome = ValidationOutcome(valid=valid, quarantine=quarantine, rows_in=df.height,
                                rows_valid=valid.height, rows_quarantined=quarantine.height,
                                reason_counts=reason_counts)
    if outcome.rows_in != outcome.rows_valid + outcome.rows_quarantined:  # pragma: no cover - invariant
        raise RuntimeError(f"row accounting broken: {outcome.rows_in} in != {outcome.rows_valid} valid + "
                           f"{outcome.rows_quarantined} quarantined")
    return outcome


def pass_through(df: pl.DataFrame) -> ValidationOutcome:
    """The outcome when no contract applies: every row valid as it is, an empty quarantine of the same shape."""
    quarantine = df.head(0).select(pl.lit(None, dtype=pl.Int64).alias(ROW), pl.lit(None, dtype=pl.String)
                                   .alias(REASONS), *df.columns)
    return ValidationOutcome(valid=df, quarantine=quarantine, rows_in=df.height, rows_valid=df.height,
                             rows_quarantined=0)
