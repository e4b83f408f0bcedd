"""Unit tests of the data validation family: contract, validate_table, stats, report and run_validation
(contract inference: test_validation_infer.py; the step: test_validation_step.py)."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from components._core.artifacts import ArtifactError, read_json
from components._core.config import ConfigError
from components.data.contracts import BREAST_CANCER_FEATURES, breast_cancer_contract, demo_events_contract
from components.data.events import BAD_KINDS, EventsConfig, generate_events
from components.validation.contract import ColumnRule, Contract, ContractError
from components.validation.report import render_report
from components.validation.run import (
    EmptyInputError,
    QuarantineThresholdError,
    ValidationConfig,
    run_validation,
)
from components.validation.stats import column_stats
from components.validation.validate import ValidationOutcome, validate_table

# --- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture
def contract() -> Contract:
    """A small contract touching every rule kind."""
    return Contract(
        columns=[
            ColumnRule(name="entity_id", dtype="int", min=1),
            ColumnRule(name="event_timestamp", dtype="datetime", time_zone="UTC",
                       min="2020-01-01T00:00:00+00:00", max="2030-01-01T00:00:00+00:00"),
            ColumnRule(name="amount", dtype="float", min=0),
            ColumnRule(name="session_minutes", dtype="float", min=0, max=600),
            ColumnRule(name="country", dtype="string", allowed=["DE", "FR", "US"]),
            ColumnRule(name="label", dtype="int", min=0, max=1),
        ],
        unique_keys=["entity_id", "event_timestamp"],
    )


def _ts(day: int) -> datetime:
    return datetime(2026, 1, day, tzinfo=UTC)


@pytest.fixture
def clean() -> pl.DataFrame:
    """Four valid rows of the ``contract`` fixture's shape."""
    return pl.DataFrame({
        "entity_id": [1, 2, 3, 4],
        "event_timestamp": [_ts(1), _ts(2), _ts(3), _ts(4)],
        "amount": [1.5, 0.0, 3.25, 10.0],
        "session_minutes": [1.0, 2.0, 3.0, 4.0],
        "country": ["DE", "FR", "US", "DE"],
        "label": [0, 1, 0, 1],
    }).with_columns(pl.col("event_timestamp").dt.cast_time_unit("us"))


def _set(df: pl.DataFrame, row: int, column: str, value: object) -> pl.DataFrame:
    """``df`` with one cell replaced (the column keeps its dtype unless the value needs a supertype)."""
    values = df.get_column(column).to_list()
    values[row] = value
    return df.with_columns(pl.Series(column, values, dtype=df.schema[column], strict=False))


def _reasons(outcome: ValidationOutcome) -> dict[int, str]:
    q = outcome.quarantine
    return dict(zip(q["_row"].to_list(), q["_reasons"].to_list(), strict=True))


def _write_events(path: Path, **kwargs: object) -> str:
    generate_events(EventsConfig.parse(kwargs)).write_parquet(path)
    return str(path)


# --- rules -----------------------------------------------------------------------------------------------


def test_clean_rows_all_valid_and_cast(contract: Contract, clean: pl.DataFrame) -> None:
    out = validate_table(clean, contract)
    assert (out.rows_in, out.rows_valid, out.rows_quarantined) == (4, 4, 0)
    assert out.reason_counts == {}
    assert out.valid.equals(clean)
    assert out.quarantine.columns[:2] == ["_row", "_reasons"]
    assert out.quarantine.height == 0


@pytest.mark.parametrize(("column", "value", "reason", "key"), [
    ("amount", -3.2, "amount: -3.2 < min 0", "amount:min"),
    ("session_minutes", 601.5, "session_minutes: 601.5 > max 600", "session_minutes:max"),
    ("country", "XX", "country: 'XX' not in allowed", "country:allowed"),
    ("session_minutes", float("nan"), "session_minutes: NaN not allowed", "session_minutes:nan"),
    ("session_minutes", float("inf"), "session_minutes: inf not allowed", "session_minutes:inf"),
    ("session_minutes", float("-inf"), "session_minutes: -inf not allowed", "session_minutes:inf"),
    ("entity_id", None, "entity_id: null not allowed", "entity_id:null"),
    ("label", 2, "label: 2 > max 1", "label:max"),
    ("entity_id", 0, "entity_id: 0 < min 1", "entity_id:min"),
    ("event_timestamp", datetime(2036, 3, 1, tzinfo=UTC),
     "event_timestamp: 2036-03-01T00:00:00+00:00 > max 2030-01-01T00:00:00+00:00", "event_timestamp:max"),
    ("event_timestamp", datetime(2019, 12, 31, 23, 59, 59, 500, tzinfo=UTC),
     "event_timestamp: 2019-12-31T23:59:59.000500+00:00 < min 2020-01-01T00:00:00+00:00",
     "event_timestamp:min"),
])
def test_each_rule_quarantines_with_its_reason(contract: Contract, clean: pl.DataFrame, column: str,
                                               value: object, reason: str, key: str) -> None:
    bad = _set(clean, 2, column, value)
    out = validate_table(bad, contract)
    assert _reasons(out) == {2: reason}
    assert out.reason_counts == {key: 1}
    assert out.rows_valid == 3
    # The quarantine keeps the original input values of the bad row.
    assert out.quarantine.drop("_row", "_reasons").equals(bad[2])


def test_bounds_are_inclusive(contract: Contract, clean: pl.DataFrame) -> None:
    edge = _set(_set(clean, 0, "session_minutes", 600.0), 1, "amount", 0.0)
    edge = _set(edge, 2, "event_timestamp", datetime(2030, 1, 1, tzinfo=UTC))
    assert validate_table(edge, contract).rows_quarantined == 0


def test_several_reasons_are_joined_in_contract_order(contract: Contract, clean: pl.DataFrame) -> None:
    bad = _set(_set(_set(clean, 1, "country", "XX"), 1, "amount", -1.0), 1, "entity_id", None)
    out = validate_table(bad, contract)
    assert _reasons(out) == {
        1: "entity_id: null not allowed; amount: -1.0 < min 0; country: 'XX' not in allowed"}
    assert out.reason_counts == {"entity_id:null": 1, "amount:min": 1, "country:allowed": 1}


def test_duplicate_keys_keep_first_and_name_it(contract: Contract, clean: pl.DataFrame) -> None:
    rows = pl.concat([clean, clean[1], clean[1], clean[3]])  # rows 4, 5 repeat row 1; row 6 repeats row 3
    out = validate_table(rows, contract)
    assert _reasons(out) == {
        4: "duplicate key (entity_id, event_timestamp) first at row 1",
        5: "duplicate key (entity_id, event_timestamp) first at row 1",
        6: "duplicate key (entity_id, event_timestamp) first at row 3",
    }
    assert out.reason_counts == {"entity_id+event_timestamp:unique": 3}
    assert out.valid.equals(clean)


def test_duplicate_of_a_quarantined_row_is_still_a_duplicate(contract: Contract, clean: pl.DataFrame) -> None:
    rows = pl.concat([_set(clean, 0, "amount", -1.0), clean[0]])
    out = validate_table(rows, contract)
    assert _reasons(out) == {0: "amount: -1.0 < min 0",
                             4: "duplicate key (entity_id, event_timestamp) first at row 0"}


def test_single_column_key_reason() -> None:
    c = Contract(columns=[ColumnRule(name="id", dtype="int")], unique_keys=["id"])
    out = validate_table(pl.DataFrame({"id": [5, 6, 5]}), c)
    assert _reasons(out) == {2: "duplicate key (id) first at row 0"}


def test_nullable_and_non_finite_allowed_when_declared() -> None:
    c = Contract(columns=[ColumnRule(name="x", dtype="float", nullable=True, finite=False, max=10)])
    df = pl.DataFrame({"x": [None, float("nan"), float("inf"), float("-inf"), 3.0]})
    out = validate_table(df, c)
    # NaN is never range-checked; +inf is compared with max like any other value.
    assert _reasons(out) == {2: "x: inf > max 10"}


def test_allowed_on_int_and_bool_columns() -> None:
    c = Contract(columns=[ColumnRule(name="k", dtype="int", allowed=[1, 2]),
                          ColumnRule(name="b", dtype="bool", allowed=[True], nullable=True)])
    out = validate_table(pl.DataFrame({"k": [1, 3, 2], "b": [True, None, False]}), c)
    assert _reasons(out) == {1: "k: 3 not in allowed", 2: "b: false not in allowed"}


def test_date_column_bounds_and_parsing() -> None:
    c = Contract(columns=[ColumnRule(name="d", dtype="date", min="2020-01-01", max="2020-12-31")])
    df = pl.DataFrame({"d": ["2020-05-01", "2021-01-01", "2020-02-30", " 2020-12-31 "]})
    out = validate_table(df, c)
    assert _reasons(out) == {1: "d: 2021-01-01 > max 2020-12-31", 2: "d: '2020-02-30' is not a date"}
    assert out.valid["d"].to_list() == [date(2020, 5, 1), date(2020, 12, 31)]


# --- casting ---------------------------------------------------------------------------------------------


def test_wrong_types_from_csv_are_cast_per_row(tmp_path: Path, contract: Contract,
                                               clean: pl.DataFrame) -> None:
    from components._core.artifacts import read_table

    path = tmp_path / "events.csv"
    text = clean.with_columns(pl.col("amount").cast(pl.String)).pipe(_set, 1, "amount", "abc")
    text = _set(text, 3, "amount", " 7.5 ")
    text.write_csv(path)
    df = read_table(str(path))
    assert df.schema["amount"] == pl.String and df.schema["event_timestamp"] == pl.String
    out = validate_table(df, contract)
    assert _reasons(out) == {1: "amount: 'abc' is not a float"}
    assert out.reason_counts == {"amount:dtype": 1}
    assert out.valid.schema == clean.schema
    assert out.valid["amount"].to_list() == [1.5, 3.25, 7.5]
    assert out.valid["event_timestamp"].to_list() == [_ts(1), _ts(3), _ts(4)]
    # The original value is kept, as the original type, in the quarantine.
    assert out.quarantine["amount"].to_list() == ["abc"]


def test_floats_in_int_column_must_be_integral(contract: Contract, clean: pl.DataFrame) -> None:
    df = clean.with_columns(pl.Series("label", [0.0, 1.0, 0.5, float("nan")]))
    out = validate_table(df, contract)
    assert _reasons(out) == {2: "label: 0.5 is not an int", 3: "label: NaN is not an int"}
    assert out.valid.schema["label"] == pl.Int64
    assert out.valid["label"].to_list() == [0, 1]


def test_string_ints_and_bools_parse() -> None:
    c = Contract(columns=[ColumnRule(name="n", dtype="int"), ColumnRule(name="b", dtype="bool")])
    df = pl.DataFrame({"n": ["1", " 2", "3.0", "3.5", "x", "99999999999999999999"],
                       "b": ["true", "No", "1", "maybe", "F", "yes"]})
    out = validate_table(df, c)
    assert _reasons(out) == {
        3: "n: '3.5' is not an int; b: 'maybe' is not a bool",
        4: "n: 'x' is not an int",
        5: "n: '99999999999999999999' is not an int",
    }
    assert out.valid["n"].to_list() == [1, 2, 3]
    assert out.valid["b"].to_list() == [True, False, True]


def test_datetime_strings_in_several_iso_forms() -> None:
    c = Contract(columns=[ColumnRule(name="t", dtype="datetime", time_zone="UTC")])
    df = pl.DataFrame({"t": ["2026-01-01T00:00:00Z", "2026-01-01 02:00:00+02:00", "2026-01-01T00:00:00.5",
                             "2026-01-02", "2026-01-01T07:34:55.338867+0000", "yesterday"]})
    out = validate_table(df, c)
    assert _reasons(out) == {5: "t: 'yesterday' is not a datetime"}
    assert out.valid["t"].to_list() == [
        datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC),
        datetime(2026, 1, 1, 7, 34, 55, 338867, tzinfo=UTC)]


def test_naive_and_other_zone_datetimes_are_brought_to_the_contract_zone() -> None:
    c = Contract(columns=[ColumnRule(name="t", dtype="datetime", time_zone="UTC")])
    naive = pl.DataFrame({"t": [datetime(2026, 1, 1, 12)]})
    berlin = naive.with_columns(pl.col("t").dt.replace_time_zone("Europe/Berlin"))
    assert validate_table(naive, c).valid["t"].to_list() == [datetime(2026, 1, 1, 12, tzinfo=UTC)]
    assert validate_table(berlin, c).valid["t"].to_list() == [datetime(2026, 1, 1, 11, tzinfo=UTC)]


def test_unparseable_key_is_a_type_error_not_a_duplicate(contract: Contract, clean: pl.DataFrame) -> None:
    df = clean.with_columns(pl.col("entity_id").cast(pl.String)).pipe(_set, 1, "entity_id", "x")
    df = _set(df, 2, "entity_id", "y")
    df = df.with_columns(pl.lit(_ts(1)).dt.cast_time_unit("us").alias("event_timestamp"))
    out = validate_table(df, contract)
    assert _reasons(out) == {1: "entity_id: 'x' is not an int", 2: "entity_id: 'y' is not an int"}


def test_all_null_column_of_null_type(contract: Contract, clean: pl.DataFrame) -> None:
    df = clean.with_columns(pl.lit(None).alias("amount"))
    assert df.schema["amount"] == pl.Null
    out = validate_table(df, contract)
    assert out.reason_counts == {"amount:null": 4}


# --- columns ---------------------------------------------------------------------------------------------


def test_missing_columns_error_names_all(contract: Contract, clean: pl.DataFrame) -> None:
    with pytest.raises(ContractError, match=r"missing contract columns: \['amount', 'label'\]"):
        validate_table(clean.drop("amount", "label"), contract)


def test_extra_columns_kept_after_contract_columns(contract: Contract, clean: pl.DataFrame) -> None:
    df = clean.select(pl.lit("z").alias("note"), *clean.columns[::-1])
    out = validate_table(df, contract)
    assert out.valid.columns == [*contract.names, "note"]
    strict = contract.model_copy(update={"allow_extra_columns": False})
    with pytest.raises(ContractError, match=r"extra columns not allowed by the contract: \['note'\]"):
        validate_table(df, strict)


def test_reserved_and_unusable_columns(contract: Contract, clean: pl.DataFrame) -> None:
    with pytest.raises(ContractError, match="_row"):
        validate_table(clean.with_columns(pl.lit(1).alias("_row")), contract)
    with pytest.raises(ContractError, match="amount"):
        validate_table(clean.with_columns(pl.col("amount").cast(pl.String).str.split("")), contract)


def test_empty_table_validates_to_empty_outputs(contract: Contract, clean: pl.DataFrame) -> None:
    out = validate_table(clean.head(0), contract)
    assert (out.rows_in, out.rows_valid, out.rows_quarantined, out.quarantine_share) == (0, 0, 0, 0.0)
    assert out.valid.schema == clean.schema


# --- contract config -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rule", "message"), [
    ({"name": "x", "dtype": "float", "min": 5, "max": 1}, "min 5 > max 1"),
    ({"name": "x", "dtype": "string", "min": 0}, "min/max do not apply"),
    ({"name": "x", "dtype": "int", "min": "a"}, "must be a finite number"),
    ({"name": "x", "dtype": "datetime", "max": "not-a-date"}, "not an ISO datetime"),
    ({"name": "x", "dtype": "datetime", "min": "2030-01-01", "max": "2020-01-01"}, "> max"),
    ({"name": "x", "dtype": "string", "allowed": ["a", 1]}, "wrong type"),
    ({"name": "x", "dtype": "int", "time_zone": "UTC"}, "time_zone applies only"),
    ({"name": "x", "dtype": "datetime", "time_zone": "Mars/Olympus"}, "unknown time_zone"),
    ({"name": "x", "dtype": "decimal"}, "dtype"),
    ({"name": "x", "dtype": "int", "colour": "red"}, "colour"),
])
def test_column_rule_errors_name_the_problem(rule: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ColumnRule.parse(rule)


def test_contract_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"unique_keys \['nope'\] are not contract columns"):
        Contract.parse({"columns": [{"name": "a", "dtype": "int"}], "unique_keys": ["nope"]})
    with pytest.raises(ConfigError, match="duplicate column rules"):
        Contract.parse({"columns": [{"name": "a", "dtype": "int"}, {"name": "a", "dtype": "float"}]})
    with pytest.raises(ConfigError, match=r"Contract\.columns\.0\.dtype"):
        Contract.parse('{"columns": [{"name": "a", "dtype": "uint"}]}')


def test_contract_round_trips_through_json(contract: Contract) -> None:
    assert Contract.parse(contract.to_json()) == contract


# --- demo contracts --------------------------------------------------------------------------------------


def _corrupted_rows(bad: pl.DataFrame, clean: pl.DataFrame, keys: list[str]) -> tuple[set[int], set[int]]:
    """Rows that differ from the clean table, split into (detectable, undetectable).

    ``generate_events`` injects a duplicate key by copying the previous row's key in the same step for all
    rows; when two duplicate-key rows are adjacent, the second copies a key the first no longer has: the row
    changed, but its key is unique and every value valid, so no validator can flag it."""
    joined = pl.concat([bad, clean.rename({c: f"{c}_clean" for c in clean.columns})], how="horizontal")
    bad_key = pl.struct(keys)
    clean_key = pl.struct([pl.col(f"{k}_clean").alias(k) for k in keys])
    marked = joined.with_row_index("r").with_columns(
        pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}_clean"))
                           for c in clean.columns]).alias("changed"),
        (pl.all_horizontal([pl.col(c).eq_missing(pl.col(f"{c}_clean"))
                            for c in clean.columns if c not in keys])
         & bad_key.eq_missing(clean_key.shift(1))  # copied the previous row's original key ...
         & bad_key.shift(1).ne_missing(clean_key.shift(1))  # ... which that row no longer has
         & bad_key.is_first_distinct()).alias("undetectable"),
    ).filter("changed")
    undetectable = set(marked.filter("undetectable")["r"].to_list())
    return set(marked["r"].to_list()) - undetectable, undetectable


def test_demo_contract_quarantines_exactly_the_corrupted_rows() -> None:
    contract = demo_events_contract()
    clean = generate_events(EventsConfig(rows=4000, seed=11))
    bad = generate_events(EventsConfig(rows=4000, seed=11, bad_share=0.05))
    assert validate_table(clean, contract).rows_quarantined == 0
    expected, undetectable = _corrupted_rows(bad, clean, contract.unique_keys)
    assert len(expected) + len(undetectable) == 200
    assert len(undetectable) <= 5
    out = validate_table(bad, contract)
    assert set(out.quarantine["_row"].to_list()) == expected
    assert out.rows_valid == 4000 - len(expected)
    # Every injected defect kind shows up under its rule.
    assert set(out.reason_counts) == {"entity_id:null", "amount:min", "country:allowed",
                                      "session_minutes:nan", "session_minutes:inf", "event_timestamp:max",
                                      "entity_id+event_timestamp:unique"}
    assert len(BAD_KINDS) == len(out.reason_counts)


@pytest.mark.slow  # importing scikit-learn takes ~10 s on 2 cores
def test_breast_cancer_contract_matches_the_data_set() -> None:
    pytest.importorskip("sklearn")
    from components.data.breast_cancer import breast_cancer_events

    df = breast_cancer_events()
    assert df.columns == ["entity_id", "event_timestamp", *BREAST_CANCER_FEATURES, "label"]
    out = validate_table(df, breast_cancer_contract())
    assert out.rows_quarantined == 0 and out.rows_valid == df.height


# --- stats / report --------------------------------------------------------------------------------------


def test_column_stats_values() -> None:
    df = pl.DataFrame({
        "x": [1.0, 2.0, 3.0, None, float("nan"), float("inf")],
        "n": [1, 1, 2, 3, 5, 8],
        "s": ["a", "b", "a", None, "a", "b"],
        "t": [_ts(d) for d in (3, 1, 2, 6, 5, 4)],
        "b": [True, False, True, None, True, True],
    })
    st = column_stats(df)
    x = st["x"]
    assert (x["count"], x["nulls"], x["nan"], x["inf"]) == (6, 1, 1, 1)
    assert (x["min"], x["max"], x["mean"], x["p50"]) == (1.0, 3.0, 2.0, 2.0)
    assert x["std"] == pytest.approx(1.0)
    assert x["null_share"] == pytest.approx(1 / 6)
    assert (st["n"]["min"], st["n"]["max"], st["n"]["n_unique"]) == (1, 8, 5)
    assert st["n"]["mean"] == pytest.approx(20 / 6)
    assert st["s"]["top"] == [{"value": "a", "count": 3}, {"value": "b", "count": 2}]
    assert (st["t"]["min"], st["t"]["max"]) == ("2026-01-01T00:00:00+00:00", "2026-01-06T00:00:00+00:00")
    assert st["b"]["true"] == 4
    json.dumps(st, allow_nan=False)  # JSON-safe: no NaN/inf anywhere


def test_column_stats_top_is_capped_and_empty_frames_work() -> None:
    df = pl.DataFrame({"s": [f"v{i % 15}" for i in range(100)], "x": [float(i) for i in range(100)]})
    assert len(column_stats(df)["s"]["top"]) == 10
    empty = column_stats(df.head(0))
    assert empty["x"]["count"] == 0 and empty["x"]["mean"] is None and empty["x"]["null_share"] == 0.0


def test_report_contains_the_numbers(contract: Contract, clean: pl.DataFrame) -> None:
    rows = pl.concat([clean] * 5).with_columns(pl.int_range(1, 21).alias("entity_id"))
    for r in range(12):
        rows = _set(rows, r, "country", "XX|Y")
    out = validate_table(rows, contract)
    md = render_report(out, column_stats(out.valid), max_quarantine_share=0.05)
    assert "**FAIL**: quarantine share 60.00% > threshold 5.00% (12 of 20 rows quarantined)" in md
    assert "| 20 | 8 | 12 | 0.6000 | 0.0500 |" in md
    assert "| country:allowed | 12 | 0.6000 |" in md
    assert "country: 'XX\\|Y' not in allowed" in md  # pipes escaped inside table cells
    sample = md.split("## Sample quarantined rows")[1]
    assert sum(1 for line in sample.splitlines() if line.startswith("| ") and "not in allowed" in line) == 10
    assert "| amount | Float64 | 0 | 0.0000 |" in md
    ok = render_report(validate_table(clean, contract), column_stats(clean), max_quarantine_share=0.0)
    assert "**PASS**: quarantine share 0.00% <= threshold 0.00%" in ok and "No rows were quarantined." in ok


# --- run_validation --------------------------------------------------------------------------------------


def _uris(tmp_path: Path) -> dict[str, str]:
    return {"valid_uri": str(tmp_path / "out" / "valid.parquet"),
            "quarantine_uri": str(tmp_path / "out" / "quarantine.parquet"),
            "stats_uri": str(tmp_path / "out" / "stats.json"),
            "report_uri": str(tmp_path / "out" / "report.md")}


def test_run_validation_writes_all_artifacts(tmp_path: Path) -> None:
    src = _write_events(tmp_path / "in.parquet", rows=2000, bad_share=0.02)
    uris = _uris(tmp_path)
    summary = run_validation(src, **uris, config={"contract": demo_events_contract().model_dump()})
    assert summary.passed and not summary.contract_inferred
    assert (summary.rows_in, summary.rows_valid + summary.rows_quarantined) == (2000, 2000)
    assert 35 <= summary.rows_quarantined <= 40
    assert pl.read_parquet(uris["valid_uri"]).height == summary.rows_valid
    q = pl.read_parquet(uris["quarantine_uri"])
    assert q.height == summary.rows_quarantined and q["_reasons"].str.len_chars().min() > 0  # type: ignore[operator]
    stats = read_json(uris["stats_uri"])
    assert stats["summary"]["rows_valid"] == summary.rows_valid
    assert stats["columns"]["amount"]["min"] >= 0
    assert stats["contract"]["unique_keys"] == ["entity_id", "event_timestamp"]
    assert "**PASS**" in Path(uris["report_uri"]).read_text()
    meta = summary.to_metadata()
    assert meta["rows_in"] == 2000 and meta["passed"] is True
    assert all(isinstance(v, int | float | str | bool) for v in meta.values())
    assert sum(v for k, v in meta.items() if k.startswith("reason.")) >= summary.rows_quarantined  # type: ignore[misc]
    assert not list((tmp_path / "out").glob(".tmp-*"))


def test_threshold_error_is_raised_after_artifacts_are_written(tmp_path: Path) -> None:
    src = _write_events(tmp_path / "in.parquet", rows=1000, bad_share=0.2)
    uris = _uris(tmp_path)
    cfg = ValidationConfig(contract=demo_events_contract(), max_quarantine_share=0.1)
    with pytest.raises(QuarantineThresholdError) as err:
        run_validation(src, **uris, config=cfg)
    summary = err.value.summary
    assert not summary.passed and summary.quarantine_share > 0.1
    assert f"{summary.quarantine_share:.4f}" in str(err.value) and "0.1000" in str(err.value)
    assert "top reasons:" in str(err.value) and ":" in str(err.value).split("top reasons:")[1]
    assert pl.read_parquet(uris["quarantine_uri"]).height == summary.rows_quarantined
    assert pl.read_parquet(uris["valid_uri"]).height == summary.rows_valid
    assert read_json(uris["stats_uri"])["summary"]["passed"] is False
    assert "**FAIL**" in Path(uris["report_uri"]).read_text()


def test_inferred_contract_from_reference(tmp_path: Path) -> None:
    ref = _write_events(tmp_path / "ref.parquet", rows=1500, seed=3)
    src = _write_events(tmp_path / "in.parquet", rows=1500, seed=3, bad_share=0.04)
    uris = _uris(tmp_path)
    summary = run_validation(src, **uris, reference_uri=ref,
                             config={"infer": {"unique_keys": ["entity_id", "event_timestamp"]}})
    assert summary.contract_inferred and summary.contract_source == "inferred"
    # Ranges are off by default: negative amounts and far-future timestamps pass; the other defects do not.
    assert set(summary.reason_counts) == {"entity_id:null", "session_minutes:nan", "session_minutes:inf",
                                          "country:allowed", "entity_id+event_timestamp:unique"}
    assert read_json(uris["stats_uri"])["contract"]["unique_keys"] == ["entity_id", "event_timestamp"]
    assert "Contract: inferred from the reference (no numeric ranges;" in Path(uris["report_uri"]).read_text()
    with pytest.raises(ConfigError, match="not both"):
        run_validation(src, **_uris(tmp_path / "c"), reference_uri=ref,
                       config={"contract": demo_events_contract().model_dump()})


def test_margin_is_stated_in_the_report(tmp_path: Path) -> None:
    ref = _write_events(tmp_path / "ref.parquet", rows=500, seed=3)
    uris = _uris(tmp_path)
    run_validation(ref, **uris, reference_uri=ref, config={"infer": {"numeric_ranges": "margin",
                                                                     "range_margin": 0.25}})
    assert ("numeric ranges: observed min/max widened by 0.25 x the observed span on each side"
            in Path(uris["report_uri"]).read_text())
    assert read_json(uris["stats_uri"])["contract"]["columns"][2]["min"] == 0.0  # amount >= 0 stays >= 0


def test_no_contract_and_no_reference_passes_rows_through_and_says_so(tmp_path: Path) -> None:
    df = generate_events(EventsConfig(rows=300, bad_share=0.1, seed=2))
    src = tmp_path / "in.parquet"
    df.write_parquet(src)
    uris = _uris(tmp_path)
    summary = run_validation(str(src), **uris, config={})
    assert (summary.rows_valid, summary.rows_quarantined, summary.passed) == (300, 0, True)
    meta = summary.to_metadata()
    assert (meta["contract_source"], meta["row_rules_applied"], meta["contract_inferred"]) == ("none", False, False)
    assert pl.read_parquet(uris["valid_uri"]).equals(df)
    q = pl.read_parquet(uris["quarantine_uri"])
    assert q.height == 0 and q.columns == ["_row", "_reasons", *df.columns]
    report = Path(uris["report_uri"]).read_text()
    assert "**UNCHECKED**: no contract and no reference, so no row rules were applied" in report
    assert "**PASS**" not in report and "Contract: none" in report
    stats = read_json(uris["stats_uri"])
    assert stats["contract"] is None and stats["columns"]["amount"]["count"] == 300


def test_empty_input(tmp_path: Path) -> None:
    src = tmp_path / "empty.csv"
    src.write_text("entity_id,event_timestamp,amount,n_items,session_minutes,account_age_days,country,channel,"
                   "device,label\n")
    uris = _uris(tmp_path)
    cfg = {"contract": demo_events_contract().model_dump()}
    with pytest.raises(EmptyInputError, match=r"empty\.csv has no rows"):
        run_validation(str(src), **uris, config=cfg)
    assert not (tmp_path / "out").exists()
    summary = run_validation(str(src), **uris, config={**cfg, "allow_empty": True})
    assert (summary.rows_in, summary.quarantine_share, summary.passed) == (0, 0.0, True)
    assert pl.read_parquet(uris["valid_uri"]).schema["event_timestamp"] == pl.Datetime("us", "UTC")


def test_contract_errors_raise_before_anything_is_written(tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    generate_events(EventsConfig(rows=50)).drop("label").write_parquet(src)
    with pytest.raises(ContractError, match="label"):
        run_validation(str(src), **_uris(tmp_path), config={"contract": demo_events_contract().model_dump()})
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("config", "field"), [
    ({"max_quarantine_share": 1.5}, "ValidationConfig.max_quarantine_share"),
    ({"max_quarantine_share": -0.1}, "ValidationConfig.max_quarantine_share"),
    ({"allow_empty": "perhaps"}, "ValidationConfig.allow_empty"),
    ({"threshold": 0.1}, "ValidationConfig.threshold"),
    ({"contract": {"columns": [{"name": "a", "dtype": "int", "min": "x"}]}}, "ValidationConfig.contract"),
    ('{"max_quarantine_share": 2}', "ValidationConfig.max_quarantine_share"),
    ({"infer": {"numeric_ranges": "wide"}}, "ValidationConfig.infer.numeric_ranges"),
    ({"infer": {"range_margin": -1}}, "ValidationConfig.infer.range_margin"),
    ({"infer_unique_keys": ["a"]}, "ValidationConfig.infer_unique_keys"),
])
def test_config_errors_name_the_field(config: object, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        ValidationConfig.parse(config)


def test_infer_options_only_without_contract() -> None:
    with pytest.raises(ConfigError, match="infer applies only when the contract is inferred"):
        ValidationConfig.parse({"contract": demo_events_contract().model_dump(), "infer": {"unique_keys": ["a"]}})


@pytest.mark.parametrize("name", ["truncated.parquet", "garbage.csv", "ragged.csv"])
def test_malformed_input_raises_artifact_error_naming_the_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".parquet"):
        generate_events(EventsConfig(rows=500)).write_parquet(path)
        path.write_bytes(path.read_bytes()[:-200])
    elif name == "garbage.csv":
        path.write_bytes(bytes(range(256)) * 8)
    else:
        path.write_text('a,b\n1,2\n3,4,5,6\n"unclosed,7\n')
    with pytest.raises(ArtifactError, match=name):
        run_validation(str(path), **_uris(tmp_path), config={"contract": demo_events_contract().model_dump()})
    assert not (tmp_path / "out").exists()


def test_missing_input_raises_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"nothing\.parquet"):
        run_validation(str(tmp_path / "nothing.parquet"), **_uris(tmp_path),
                       config={"contract": demo_events_contract().model_dump()})


def test_csv_input_round_trip_matches_parquet(tmp_path: Path) -> None:
    df = generate_events(EventsConfig(rows=1500, bad_share=0.03, seed=5))
    df.write_csv(tmp_path / "in.csv")
    df.write_parquet(tmp_path / "in.parquet")
    cfg = {"contract": demo_events_contract().model_dump()}
    a = run_validation(str(tmp_path / "in.csv"), **_uris(tmp_path / "a"), config=cfg)
    b = run_validation(str(tmp_path / "in.parquet"), **_uris(tmp_path / "b"), config=cfg)
    assert a == b
    valid_a = pl.read_parquet(tmp_path / "a" / "out" / "valid.parquet")
    valid_b = pl.read_parquet(tmp_path / "b" / "out" / "valid.parquet")
    assert valid_a.equals(valid_b)
    assert not math.isnan(valid_a["session_minutes"].sum())
