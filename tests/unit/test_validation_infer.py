"""Contract inference: a contract inferred from one month accepts the next clean month and still quarantines
exactly the rows that break it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from components._core.artifacts import read_table
from components._core.config import ConfigError
from components.data.events import EventsConfig, generate_events
from components.data.sources import write_demo_source
from components.validation.contract import ContractError
from components.validation.infer import InferOptions, infer_contract, is_id_name, is_time_name
from components.validation.validate import ValidationOutcome, validate_table

KEYS = ["entity_id", "event_timestamp"]


def _reasons(outcome: ValidationOutcome) -> dict[int, str]:
    q = outcome.quarantine
    return dict(zip(q["_row"].to_list(), q["_reasons"].to_list(), strict=True))


def _month(tmp_path: Path, name: str, **cfg: object) -> pl.DataFrame:
    """A month of demo events written by pandas as CSV (ISO timestamps as text) and read back."""
    path = tmp_path / f"{name}.csv"
    generate_events(EventsConfig.parse(cfg)).to_pandas().to_csv(path, index=False)
    return read_table(str(path))


@pytest.fixture
def january(tmp_path: Path) -> pl.DataFrame:
    return _month(tmp_path, "january", rows=3000, days=31, seed=1)


@pytest.fixture
def february(tmp_path: Path) -> pl.DataFrame:
    return _month(tmp_path, "february", rows=3000, days=28, seed=2, start="2026-02-01")


# --- month to month --------------------------------------------------------------------------------------


def test_a_contract_from_january_accepts_a_clean_february(january: pl.DataFrame, february: pl.DataFrame) -> None:
    assert january.schema["event_timestamp"] == pl.String  # as read from the CSV
    c = infer_contract(january, unique_keys=KEYS)
    ts = c.column("event_timestamp")
    assert (ts.dtype, ts.time_zone, ts.allowed, ts.min, ts.max) == ("datetime", "UTC", None, None, None)
    assert c.column("entity_id").allowed is None and c.column("entity_id").min is None
    assert c.column("amount").min is None and c.column("amount").max is None
    assert c.column("country").allowed == ["BR", "DE", "FR", "GB", "IN", "US"]
    assert c.column("device").allowed == ["android", "desktop", "ios"]
    out = validate_table(february, c)
    assert (out.rows_quarantined, out.rows_valid) == (0, 3000)
    assert out.valid.schema["event_timestamp"] == pl.Datetime("us", "UTC")
    assert out.valid["event_timestamp"].min() >= datetime(2026, 2, 1, tzinfo=UTC)  # type: ignore[operator]


def test_a_demo_uri_with_a_start_date_gives_a_later_month(tmp_path: Path, january: pl.DataFrame) -> None:
    path = write_demo_source("demo://events?rows=2000&days=28&seed=5&start=2026-03-01", tmp_path / "march")
    march = read_table(path)  # written by polars: '2026-03-01T…+0000' text
    stamps = march.select(pl.col("event_timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z"))
    assert stamps.min().item() >= datetime(2026, 3, 1, tzinfo=UTC)
    assert stamps.max().item() < datetime(2026, 3, 29, tzinfo=UTC)
    assert validate_table(march, infer_contract(january, unique_keys=KEYS)).rows_quarantined == 0


def _corrupt(df: pl.DataFrame, edits: dict[tuple[int, str], object]) -> pl.DataFrame:
    columns = {name: df.get_column(name).to_list() for name in df.columns}
    for (row, name), value in edits.items():
        columns[name][row] = value
    return pl.DataFrame(columns, schema=df.schema)


def test_a_corrupted_february_quarantines_exactly_the_bad_rows(january: pl.DataFrame,
                                                               february: pl.DataFrame) -> None:
    c = infer_contract(january, unique_keys=KEYS, numeric_ranges="sign")
    key_of_row_40 = february.row(40, named=True)
    bad = _corrupt(february, {
        (3, "country"): "XX",
        (10, "entity_id"): None,
        (17, "session_minutes"): float("nan"),
        (25, "event_timestamp"): "2026-02-30T10:00:00+00:00",
        (41, "entity_id"): key_of_row_40["entity_id"],
        (41, "event_timestamp"): key_of_row_40["event_timestamp"],
        (50, "device"): "tablet",
        (60, "amount"): -5.0,
        (61, "channel"): None,
    })
    out = validate_table(bad, c)
    assert _reasons(out) == {
        3: "country: 'XX' not in allowed",
        10: "entity_id: null not allowed",
        17: "session_minutes: NaN not allowed",
        25: "event_timestamp: '2026-02-30T10:00:00+00:00' is not a datetime",
        41: "duplicate key (entity_id, event_timestamp) first at row 40",
        50: "device: 'tablet' not in allowed",
        60: "amount: -5.0 < min 0",
        61: "channel: null not allowed",
    }
    assert out.rows_valid == 3000 - 8


def test_the_old_failure_a_small_reference_no_longer_pins_timestamps(tmp_path: Path) -> None:
    small = _month(tmp_path, "small", rows=40, days=31, seed=1)
    later = _month(tmp_path, "later", rows=40, days=28, seed=2, start="2026-02-01")
    out = validate_table(later, infer_contract(small))
    assert out.reason_counts == {}  # was: every row 'event_timestamp:allowed', plus observed-range reasons


# --- timestamps ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "dtype", "zone"), [
    (["2026-01-01T00:00:00Z", "2026-01-02 10:30"], "datetime", "UTC"),
    (["2026-01-01 10:00:00.25", "2026-01-02T00:00:00", None], "datetime", None),
    (["2026-01-01", "2026-02-28", None], "date", None),
    (["2026-01-01", "2026-01-01 12:00"], "datetime", None),
    (["2026-01-01", "soon"], "string", None),
    (["12", "13"], "string", None),
])
def test_text_columns_that_are_iso_become_temporal(values: list[str | None], dtype: str, zone: str | None) -> None:
    rule = infer_contract(pl.DataFrame({"v": values}, schema={"v": pl.String}), max_category_share=1.0).column("v")
    assert (rule.dtype, rule.time_zone) == (dtype, zone)
    assert (rule.allowed is None) == (dtype != "string")  # temporal columns never get an allowed set


def test_an_inferred_naive_datetime_column_validates_naive_text() -> None:
    c = infer_contract(pl.DataFrame({"t": ["2026-01-01 10:00", "2026-01-05 11:00"]}))
    out = validate_table(pl.DataFrame({"t": ["2026-02-01 08:00", "2026-02-30 08:00"]}), c)
    assert _reasons(out) == {1: "t: '2026-02-30 08:00' is not a datetime"}
    assert out.valid["t"].to_list() == [datetime(2026, 2, 1, 8)]


def test_date_text_is_a_date_column_with_optional_ranges() -> None:
    ref = pl.DataFrame({"day": ["2026-01-03", "2026-01-01"]})
    assert infer_contract(ref).column("day").min is None
    ranged = infer_contract(ref, datetime_ranges=True).column("day")
    assert (ranged.dtype, ranged.min, ranged.max) == ("date", "2026-01-01", "2026-01-03")
    out = validate_table(pl.DataFrame({"day": ["2026-02-01"]}), infer_contract(ref))
    assert out.valid["day"].to_list() == [date(2026, 2, 1)]


def test_datetime_ranges_from_text_are_iso_in_the_column_zone() -> None:
    ref = pl.DataFrame({"t": ["2026-01-01T02:00:00+02:00", "2026-01-31T00:00:00Z"]})
    rule = infer_contract(ref, datetime_ranges=True).column("t")
    assert (rule.min, rule.max, rule.time_zone) == ("2026-01-01T00:00:00+00:00", "2026-01-31T00:00:00+00:00",
                                                    "UTC")


def test_epoch_seconds_with_a_time_name_become_utc_datetimes() -> None:
    jan = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    ref = pl.DataFrame({
        "created_at": [jan, jan + 60],
        "event_ts": [jan + 0.5, jan + 1.5],
        "updatedAt": [jan, jan],
        "event_time_ms": [jan * 1000, jan * 1000],  # milliseconds: outside the seconds window
        "session_time": [12.5, 3.0],  # a time-like name, but durations, not epochs
        "amount": [jan, jan],  # epoch-like values, but no time-like name
    })
    c = infer_contract(ref)
    assert [(r.name, r.dtype, r.time_zone) for r in c.columns] == [
        ("created_at", "datetime", "UTC"), ("event_ts", "datetime", "UTC"), ("updatedAt", "datetime", "UTC"),
        ("event_time_ms", "int", None), ("session_time", "float", None), ("amount", "int", None)]
    feb = int(datetime(2026, 2, 1, tzinfo=UTC).timestamp())
    out = validate_table(ref.with_columns(pl.Series("created_at", [feb, feb + 1])), c)
    assert out.rows_quarantined == 0
    assert out.valid["created_at"].to_list() == [datetime(2026, 2, 1, tzinfo=UTC),
                                                 datetime(2026, 2, 1, 0, 0, 1, tzinfo=UTC)]


def test_name_hints() -> None:
    assert all(is_time_name(n) for n in ["event_timestamp", "ts", "event_ts", "created_at", "createdAt",
                                         "pickup_time"])
    assert not any(is_time_name(n) for n in ["amount", "status", "format", "tsunami"])
    assert all(is_id_name(n) for n in ["id", "user_id", "ID", "session_key", "userId", "request_uuid", "guid"])
    assert not any(is_id_name(n) for n in ["paid", "android", "valid", "keyboard", "monkey"])


# --- categories ------------------------------------------------------------------------------------------


def test_allowed_sets_only_for_categorical_columns() -> None:
    n = 20
    ref = pl.DataFrame({
        "country": ["DE", "FR", "US", "DE"] * (n // 4),
        "user_id": ["u1", "u2"] * (n // 2),  # low cardinality, but an identifier by name
        "order_key": ["a", "b"] * (n // 2),
        "comment": [f"text {i % 11}" for i in range(n)],  # 11 distinct of 20 rows: > 50 %
        "flag": [True, False] * (n // 2),
        "n": [1, 2] * (n // 2),  # ints never get an allowed set
    })
    c = infer_contract(ref)
    assert {r.name: r.allowed for r in c.columns} == {
        "country": ["DE", "FR", "US"], "user_id": None, "order_key": None, "comment": None,
        "flag": [False, True], "n": None}
    assert infer_contract(ref, max_category_share=0.6).column("comment").allowed is not None
    assert infer_contract(ref, max_categories=2).column("country").allowed is None
    assert infer_contract(ref, max_categories=0).column("flag").allowed is None


# --- numeric ranges --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "x", "n", "d"), [
    ("off", (None, None), (None, None), (None, None)),
    ("sign", (0, None), (None, None), (None, None)),
    ("observed", (2.0, 10.0), (-3, 5), (-4.0, -2.0)),
    ("margin", (1.2, 10.8), (-4, 6), (-4.2, -1.8)),
])
def test_numeric_range_modes(mode: str, x: tuple[float | None, float | None], n: tuple[int | None, int | None],
                             d: tuple[float | None, float | None]) -> None:
    ref = pl.DataFrame({"x": [2.0, 10.0, float("nan")], "n": [-3, 5, 0], "d": [-4.0, -2.0, -3.0],
                        "item_id": [1, 2, 3]})
    c = infer_contract(ref, numeric_ranges=mode)
    got = {name: (c.column(name).min, c.column(name).max) for name in ("x", "n", "d")}
    assert got == {"x": pytest.approx(x) if None not in x else x, "n": n,
                   "d": pytest.approx(d) if None not in d else d}
    assert (c.column("item_id").min, c.column("item_id").max) == (None, None)  # ids never get ranges
    assert c.column("x").finite is False


def test_margin_keeps_non_negative_columns_non_negative() -> None:
    ref = pl.DataFrame({"amount": [0.5, 100.0], "count": [0, 10], "same": [7, 7]})
    c = infer_contract(ref, numeric_ranges="margin", range_margin=0.5)
    assert (c.column("amount").min, c.column("amount").max) == (0.0, pytest.approx(149.75))
    assert (c.column("count").min, c.column("count").max) == (0, 15)
    assert (c.column("same").min, c.column("same").max) == (3, 11)  # no span: the margin is of the value


# --- options and errors ----------------------------------------------------------------------------------


def test_options_and_overrides() -> None:
    ref = pl.DataFrame({"a": [1, 2]})
    base = InferOptions(numeric_ranges="observed")
    assert infer_contract(ref, base).column("a").max == 2
    assert infer_contract(ref, base, numeric_ranges="off").column("a").max is None


def test_errors_name_the_problem() -> None:
    ref = pl.DataFrame({"a": [1, 2]})
    with pytest.raises(ConfigError, match=r"InferOptions\.numeric_ranges"):
        infer_contract(ref, numeric_ranges="wide")
    with pytest.raises(ConfigError, match=r"InferOptions\.max_categories"):
        infer_contract(ref, max_categories=-1)
    with pytest.raises(ContractError, match="nope"):
        infer_contract(ref, unique_keys=["nope"])
    with pytest.raises(ContractError, match="cannot infer"):
        infer_contract(pl.DataFrame({"l": [[1, 2]]}))
    with pytest.raises(ContractError, match="reserved"):
        infer_contract(pl.DataFrame({"_row": [1]}))


def test_a_reference_passes_its_own_contract_in_every_mode(january: pl.DataFrame) -> None:
    for mode in ("off", "sign", "observed", "margin"):
        c = infer_contract(january, unique_keys=KEYS, numeric_ranges=mode, datetime_ranges=True)
        assert validate_table(january, c).rows_quarantined == 0, mode


def test_nulls_and_null_columns() -> None:
    ref = pl.DataFrame({"x": [1.0, None], "empty": [None, None], "s": ["a", None]})
    c = infer_contract(ref)
    assert [(r.name, r.dtype, r.nullable) for r in c.columns] == [("x", "float", True), ("empty", "string", True),
                                                                  ("s", "string", True)]
