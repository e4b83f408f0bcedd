"""Property tests of validate_table: random tables (NaN, inf, nulls, duplicates, out-of-range values, wrong
input types, empty) against random variants of one contract, checked against a row-by-row Python oracle."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.validation.contract import ColumnRule, Contract, ContractError
from components.validation.validate import validate_table

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FAIL = object()  # a value that does not convert to the contract dtype
T_MIN, T_MAX = datetime(2020, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)
D_MIN = date(2020, 1, 1)
TIMES = [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
         datetime(2019, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC),
         datetime(2031, 6, 1, tzinfo=UTC)]
TARGET = {"k": pl.Int64, "x": pl.Float64, "s": pl.String, "t": pl.Datetime("us", "UTC"), "f": pl.Boolean,
          "d": pl.Date}

# ----------------------------------------------------------------------------------------------- oracle


def _int(v: Any) -> Any:
    if v is None or isinstance(v, bool):
        return int(v) if isinstance(v, bool) else None
    if isinstance(v, int):
        return v if -(2**63) <= v < 2**63 else FAIL
    if isinstance(v, float):
        return int(v) if math.isfinite(v) and v == math.floor(v) and abs(v) < 2.0**63 else FAIL
    text = v.strip()
    if "_" in text:
        return FAIL
    try:
        return _int(int(text))
    except ValueError:
        try:
            return _int(float(text))
        except ValueError:
            return FAIL


def _float(v: Any) -> Any:
    if v is None or isinstance(v, int | float):
        return None if v is None else float(v)
    text = v.strip()
    if "_" in text:
        return FAIL
    try:
        return float(text)
    except ValueError:
        return FAIL


def _bool(v: Any) -> Any:
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int):
        return {0: False, 1: True}.get(v, FAIL)
    text = v.strip().lower()
    if text in ("true", "t", "yes", "y", "1"):
        return True
    return False if text in ("false", "f", "no", "n", "0") else FAIL


def _datetime(v: Any) -> Any:
    if v is None or isinstance(v, datetime):
        return v
    try:
        value = datetime.fromisoformat(v.strip())
    except ValueError:
        return FAIL
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _date(v: Any) -> Any:
    if v is None or isinstance(v, date):
        return v
    try:
        return date.fromisoformat(v.strip())
    except ValueError:
        return FAIL


def _string(v: Any) -> Any:
    return None if v is None else str(v)


CONVERT = {"k": _int, "x": _float, "s": _string, "t": _datetime, "f": _bool, "d": _date}


def oracle(contract: Contract, columns: dict[str, list[Any]], n: int) -> list[set[str]]:
    """Per row, the set of failed ``column:rule`` keys, computed one row at a time in plain Python."""
    failed: list[set[str]] = [set() for _ in range(n)]
    converted: dict[str, list[Any]] = {}
    for rule in contract.columns:
        values = [CONVERT[rule.name](v) for v in columns[rule.name]]
        converted[rule.name] = values
        lo, hi = rule.lower_bound(), rule.upper_bound()
        for i, (raw, v) in enumerate(zip(columns[rule.name], values, strict=True)):
            key = rule.name + ":"
            if v is FAIL:
                failed[i].add(key + "dtype")
                continue
            if v is None:
                if raw is None and not rule.nullable:
                    failed[i].add(key + "null")
                continue
            comparable = v
            if isinstance(v, float):
                if math.isnan(v):
                    if rule.finite:
                        failed[i].add(key + "nan")
                    continue
                if math.isinf(v) and rule.finite:
                    failed[i].add(key + "inf")
                    continue
            if lo is not None and comparable < lo:
                failed[i].add(key + "min")
            if hi is not None and comparable > hi:
                failed[i].add(key + "max")
            if rule.allowed is not None and v not in rule.allowed:
                failed[i].add(key + "allowed")
    if contract.unique_keys:
        seen: set[tuple[Any, ...]] = set()
        for i in range(n):
            key_values = tuple(converted[k][i] for k in contract.unique_keys)
            if any(v is FAIL for v in key_values):
                continue
            if key_values in seen:
                failed[i].add("+".join(contract.unique_keys) + ":unique")
            seen.add(key_values)
    return failed


# ----------------------------------------------------------------------------------------------- strategies


@dataclass
class Case:
    contract: Contract
    df: pl.DataFrame
    columns: dict[str, list[Any]]  # the raw Python values the frame was built from


def _text(values: st.SearchStrategy[Any], garbage: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(values.map(lambda v: None if v is None else str(v)), st.sampled_from(garbage))


FLOATS = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([-1.0, 0.0, 50.0, 100.0, 100.5, math.nan, math.inf, -math.inf]))
KEYS = st.one_of(st.none(), st.integers(0, 5))
STRINGS = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", "", " a", "A"]))
TIMESTAMPS = st.one_of(st.none(), st.sampled_from(TIMES),
                       st.datetimes(datetime(2015, 1, 1), datetime(2035, 1, 1), timezones=st.just(UTC)))
BOOLS = st.one_of(st.none(), st.booleans())
DATES = st.one_of(st.none(), st.dates(date(2015, 1, 1), date(2035, 1, 1)))

# column -> representation -> (value strategy, polars dtype of the input column)
REPRESENTATIONS: dict[str, dict[str, tuple[st.SearchStrategy[Any], pl.DataType]]] = {
    "k": {"native": (KEYS, pl.Int64()),
          "text": (_text(KEYS, ["abc", "", "3.0", "2.5", " 4 ", "1e30", "99999999999999999999"]),
                   pl.String()),
          "float": (st.one_of(st.none(), st.sampled_from([1.0, 2.0, 2.5, float("nan"), float("inf")])),
                    pl.Float64())},
    "x": {"native": (FLOATS, pl.Float64()),
          "text": (_text(FLOATS.map(lambda v: None if v is None else repr(v)),
                         ["abc", "", "1,5", " 7 ", "1e400", "nan", "-inf", "Infinity"]), pl.String()),
          "int": (st.one_of(st.none(), st.integers(-10, 200)), pl.Int64())},
    "s": {"native": (STRINGS, pl.String()), "categorical": (STRINGS, pl.Categorical()),
          "int": (st.one_of(st.none(), st.integers(0, 3)), pl.Int64())},
    "t": {"native": (TIMESTAMPS, pl.Datetime("us", "UTC")),
          "text": (_text(TIMESTAMPS.map(lambda v: None if v is None else v.isoformat()),
                         ["yesterday", "2026-13-01", "2026-01-01 05:00:00", "2026-02-03"]), pl.String())},
    "f": {"native": (BOOLS, pl.Boolean()),
          "text": (_text(BOOLS, ["maybe", "yes", "0", "1", " F "]), pl.String()),
          "int": (st.one_of(st.none(), st.integers(0, 2)), pl.Int64())},
    "d": {"native": (DATES, pl.Date()),
          "text": (_text(DATES.map(lambda v: None if v is None else v.isoformat()), ["2026-02-30", "x"]),
                   pl.String())},
}


@st.composite
def contracts(draw: st.DrawFn) -> Contract:
    nullable = {c: draw(st.booleans()) for c in TARGET}
    rules = [
        ColumnRule(name="k", dtype="int", nullable=nullable["k"], min=1),
        ColumnRule(name="x", dtype="float", nullable=nullable["x"], min=0, max=100,
                   finite=draw(st.booleans())),
        ColumnRule(name="s", dtype="string", nullable=nullable["s"], allowed=["a", "b", "c"]),
        ColumnRule(name="t", dtype="datetime", nullable=nullable["t"], time_zone="UTC",
                   min=T_MIN.isoformat(), max=T_MAX.isoformat()),
        ColumnRule(name="f", dtype="bool", nullable=nullable["f"]),
        ColumnRule(name="d", dtype="date", nullable=nullable["d"], min=D_MIN.isoformat()),
    ]
    keys = draw(st.sampled_from([[], ["k"], ["k", "t"], ["s", "f"]]))
    return Contract(columns=rules, unique_keys=keys)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    contract = draw(contracts())
    n = draw(st.integers(0, 25))
    columns: dict[str, list[Any]] = {}
    series = []
    for name, reps in REPRESENTATIONS.items():
        values_strategy, dtype = reps[draw(st.sampled_from(sorted(reps)))]
        values = draw(st.lists(values_strategy, min_size=n, max_size=n))
        if n and draw(st.integers(0, 4)) == 0:  # sometimes repeat earlier rows' values to force duplicates
            values = [values[i % max(1, n // 3)] for i in range(n)]
        columns[name] = values
        series.append(pl.Series(name, values, dtype=dtype))
    series.append(pl.Series("rid", list(range(n)), dtype=pl.Int64))  # extra column: a row tracer
    return Case(contract, pl.DataFrame(series), columns)


# ----------------------------------------------------------------------------------------------- properties


@SETTINGS
@given(cases())
def test_validation_matches_the_row_oracle_and_keeps_every_row_once(case: Case) -> None:
    out = validate_table(case.df, case.contract)
    n = case.df.height
    expected = oracle(case.contract, case.columns, n)

    # Accounting: every input row lands exactly once, in input order.
    assert out.rows_in == n == out.rows_valid + out.rows_quarantined
    assert out.valid.height == out.rows_valid and out.quarantine.height == out.rows_quarantined
    q_rows = out.quarantine["_row"].to_list()
    assert q_rows == out.quarantine["rid"].to_list() == sorted(q_rows)
    assert sorted(q_rows + out.valid["rid"].to_list()) == list(range(n))

    # The quarantine is exactly the rows the oracle rejects, each with one reason per failed rule.
    assert set(q_rows) == {i for i in range(n) if expected[i]}
    for row, reasons in zip(q_rows, out.quarantine["_reasons"].to_list(), strict=True):
        assert reasons and len(reasons.split("; ")) == len(expected[row])
    counts: dict[str, int] = {}
    for failed in expected:
        for key in failed:
            counts[key] = counts.get(key, 0) + 1
    assert out.reason_counts == counts

    # The quarantine keeps the original input values.
    assert out.quarantine.drop("_row", "_reasons").equals(case.df[q_rows] if q_rows else case.df.head(0))

    # Every valid row satisfies the contract.
    assert out.valid.columns == [*case.contract.names, "rid"]
    assert_satisfies(out.valid, case.contract)


def assert_satisfies(valid: pl.DataFrame, contract: Contract) -> None:
    for rule in contract.columns:
        col = valid.get_column(rule.name)
        assert col.dtype == TARGET[rule.name]
        if not rule.nullable:
            assert col.null_count() == 0
        values = col.drop_nulls()
        if rule.dtype == "float":
            if rule.finite:
                assert values.is_finite().all()
            values = values.filter(~values.is_nan())
        lo, hi = rule.lower_bound(), rule.upper_bound()
        if lo is not None:
            assert all(v >= lo for v in values.to_list())
        if hi is not None:
            assert all(v <= hi for v in values.to_list())
        if rule.allowed is not None:
            assert set(values.to_list()) <= set(rule.allowed)
    if contract.unique_keys:
        assert not valid.select(contract.unique_keys).is_duplicated().any()


@SETTINGS
@given(cases())
def test_valid_values_are_the_converted_inputs(case: Case) -> None:
    out = validate_table(case.df, case.contract)
    rids = out.valid["rid"].to_list()
    for rule in case.contract.columns:
        expected = [CONVERT[rule.name](case.columns[rule.name][r]) for r in rids]
        got = out.valid[rule.name].to_list()
        both_nan = [isinstance(e, float) and isinstance(g, float) and math.isnan(e) and math.isnan(g)
                    for e, g in zip(expected, got, strict=True)]
        assert all(same or e == g for same, e, g in zip(both_nan, expected, got, strict=True)), rule.name


@SETTINGS
@given(cases(), st.sets(st.sampled_from(sorted(TARGET))), st.booleans(), st.booleans())
def test_schema_errors_are_the_only_errors(case: Case, drop: set[str], extra: bool,
                                           allow_extra: bool) -> None:
    df = case.df.drop(sorted(drop))
    if not extra:
        df = df.drop("rid")
    contract = case.contract.model_copy(update={"allow_extra_columns": allow_extra})
    should_fail = bool(drop) or (extra and not allow_extra)
    if should_fail:
        with pytest.raises(ContractError) as err:
            validate_table(df, contract)
        for name in sorted(drop):
            assert repr(name) in str(err.value)
    else:
        out = validate_table(df, contract)
        assert out.rows_in == out.rows_valid + out.rows_quarantined == df.height
