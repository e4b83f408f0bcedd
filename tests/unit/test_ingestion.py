"""Ingestion with the in-process engines (each test runs with polars and with duckdb): every transform, every
format, file vs folder, every error, metadata."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import fsspec
import polars as pl
import pytest

from components._core.artifacts import ArtifactError, read_table
from components._core.config import ConfigError
from components.ingestion import CastError, IngestConfig, IngestError, TransformError, run_ingest
from components.ingestion.transforms import Cast

EVENTS = pl.DataFrame({
    "id": [1, 2, 3, 4, 5, 6],
    "user": ["a", "b", "a", "c", "b", None],
    "amount": [10.0, 2.5, 7.0, None, 4.0, 1.0],
    "n_items": [2, 1, 0, 3, 4, 1],
    "ts": [3, 1, 2, 5, 4, 6],
    "country": ["DE", "FR", "DE", "US", None, "US"],
})
USERS = pl.DataFrame({"user": ["a", "b", "z"], "segment": ["smb", "consumer", "enterprise"],
                      "amount": [1, 2, 3]})


ENGINE = "duckdb"  # the engine cfg() asks for; the fixture below sets it per test


@pytest.fixture(autouse=True, params=["polars", "duckdb"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setitem(globals(), "ENGINE", request.param)
    yield request.param


def cfg(*transforms: dict[str, Any], **kw: Any) -> IngestConfig:
    return IngestConfig.parse({"data_version": "2026-01-01", "transforms": list(transforms), "engine": ENGINE,
                               **kw})


def write(df: pl.DataFrame, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    writers: dict[str, Callable[[Path], object]] = {
        ".csv": df.write_csv, ".parquet": df.write_parquet, ".jsonl": df.write_ndjson}
    writers[path.suffix](path)
    return str(path)


def ingest(tmp_path: Path, *transforms: dict[str, Any], df: pl.DataFrame = EVENTS,
           name: str = "events.parquet") -> tuple[pl.DataFrame, Any]:
    src = write(df, tmp_path / "in" / name)
    out = str(tmp_path / "out" / "result.parquet")
    result = run_ingest(src, out, cfg(*transforms))
    return pl.read_parquet(out), result


# --- config ---------------------------------------------------------------------------------------

def test_config_parses_json_into_typed_transforms() -> None:
    c = IngestConfig.parse(json.dumps({"data_version": "v1", "transforms": [
        {"op": "select", "columns": ["id"]}, {"op": "cast", "columns": {"id": "string"}}]}))
    assert [type(t).__name__ for t in c.transforms] == ["Select", "Cast"]
    assert isinstance(c.transforms[1], Cast)
    assert c.transforms[1].on_error == "fail" and c.engine == "duckdb" and c.spark_master == "local[*]"


@pytest.mark.parametrize(("data", "field"), [
    ({"transforms": []}, "data_version"),
    ({"data_version": "v", "transforms": [{"op": "explode"}]}, "transforms.0"),
    ({"data_version": "v", "transforms": [{"op": "filter", "sql": "amount >"}]}, "filter.sql"),
    ({"data_version": "v", "transforms": [{"op": "cast", "columns": {"a": "int32"}}]}, "cast.columns.a"),
    ({"data_version": "v", "transforms": [{"op": "select", "columns": ["a"], "extra": 1}]}, "select.extra"),
    ({"data_version": "v", "transforms": [{"op": "aggregate", "by": ["a"],
                                           "aggs": [{"name": "s", "fn": "sum"}]}]}, "aggregate.aggs.0"),
    ({"data_version": "v", "transforms": [{"op": "aggregate", "by": ["a"],
                                           "aggs": [{"name": "a", "fn": "count"}]}]}, "aggregate"),
    ({"data_version": "v", "engine": "dask"}, "engine"),
])
def test_bad_config_names_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        IngestConfig.parse(data)


# --- transforms -----------------------------------------------------------------------------------

def test_select_keeps_columns_in_declared_order(tmp_path: Path) -> None:
    out, res = ingest(tmp_path, {"op": "select", "columns": ["country", "id"]})
    assert out.columns == ["country", "id"] and out["id"].to_list() == EVENTS["id"].to_list()
    assert list(res.columns) == ["country", "id"]


def test_rename(tmp_path: Path) -> None:
    out, _ = ingest(tmp_path, {"op": "rename", "mapping": {"user": "customer", "ts": "t"}})
    assert out.columns == ["id", "customer", "amount", "n_items", "t", "country"]
    assert out["customer"].to_list() == EVENTS["user"].to_list()


def test_derive_arithmetic_and_case(tmp_path: Path) -> None:
    out, _ = ingest(tmp_path,
                    {"op": "derive", "name": "per_item",
                     "sql": "CASE WHEN n_items > 0 THEN amount / n_items ELSE NULL END"},
                    {"op": "derive", "name": "amount", "sql": "coalesce(amount, 0) * 2 + 1"})
    assert out["per_item"].to_list() == [5.0, 2.5, None, None, 1.0, 1.0]
    assert out["amount"].to_list() == [21.0, 6.0, 15.0, 1.0, 9.0, 3.0]
    assert out.columns[-1] == "per_item"  # a new name is appended, an existing one replaced in place


def test_filter_sql_predicate_drops_nulls(tmp_path: Path) -> None:
    sql = "amount >= 2 AND (country IN ('DE', 'FR') OR n_items > 3)"
    out, res = ingest(tmp_path, {"op": "filter", "sql": sql})
    assert out["id"].to_list() == [1, 2, 3, 5]  # id 5: null IN (...) OR true is true; id 4: null amount
    assert (res.rows_in, res.rows_out) == (6, 4)


def test_filter_or_with_null_operand(tmp_path: Path) -> None:
    out, _ = ingest(tmp_path, {"op": "filter", "sql": "country = 'US' OR n_items = 4"})
    assert out["id"].to_list() == [4, 5, 6]


@pytest.mark.parametrize(("order_by", "keep", "ids"), [
    (["ts"], "first", [2, 3, 4, 6]),     # per user the smallest ts: b->2 (ts 1), a->3 (ts 2)
    (["ts"], "last", [1, 4, 5, 6]),      # per user the largest ts: a->1 (ts 3), b->5 (ts 4)
    (None, "first", [1, 2, 4, 6]),       # row order
    (None, "last", [3, 4, 5, 6]),
])
def test_dedupe(tmp_path: Path, order_by: list[str] | None, keep: str, ids: list[int]) -> None:
    out, res = ingest(tmp_path, {"op": "dedupe", "keys": ["user"], "order_by": order_by, "keep": keep})
    assert sorted(out["id"].to_list()) == ids and res.rows_out == 4


def test_dedupe_without_order_by_follows_input_order_even_after_a_sort(tmp_path: Path) -> None:
    out, _ = ingest(tmp_path, {"op": "dedupe", "keys": ["user"], "order_by": ["amount"]},  # keeps 2, 3, 4, 6
                    {"op": "derive", "name": "k", "sql": "1"}, {"op": "dedupe", "keys": ["k"]})
    assert out["id"].to_list() == [2] and "__ingest_row" not in out.columns


@pytest.mark.parametrize(("how", "ids", "segments"), [
    ("inner", [1, 2, 3, 5], ["smb", "consumer", "smb", "consumer"]),
    ("left", [1, 2, 3, 4, 5, 6], ["smb", "consumer", "smb", None, "consumer", None]),
])
def test_join_file_with_clashing_columns(tmp_path: Path, how: str, ids: list[int],
                                         segments: list[str]) -> None:
    users = write(USERS, tmp_path / "dim" / "users.csv")
    out, _ = ingest(tmp_path, {"op": "join", "uri": users, "on": ["user"], "how": how})
    out = out.sort("id")
    assert out.columns == [*EVENTS.columns, "segment", "amount_right"]
    assert out["id"].to_list() == ids and out["segment"].to_list() == segments
    assert out["amount"].to_list() == EVENTS.filter(pl.col("id").is_in(ids))["amount"].to_list()


def test_join_folder_with_declared_format(tmp_path: Path) -> None:
    for i, part in enumerate(USERS.iter_slices(2)):
        write(part, tmp_path / "dim" / f"part-{i}.jsonl")
    out, _ = ingest(tmp_path, {"op": "join", "uri": str(tmp_path / "dim"), "on": ["user"], "format": "jsonl"})
    assert sorted(out["id"].to_list()) == [1, 2, 3, 5]


def test_aggregate_every_function(tmp_path: Path) -> None:
    df = EVENTS.with_columns(pl.when(pl.col("country") == "US").then(None).otherwise(pl.col("amount"))
                             .alias("amount"))
    out, _ = ingest(tmp_path, {"op": "aggregate", "by": ["country"], "aggs": [
        {"name": "rows", "fn": "count"}, {"name": "n_amount", "fn": "count", "column": "amount"},
        {"name": "total", "fn": "sum", "column": "amount"}, {"name": "avg", "fn": "mean", "column": "amount"},
        {"name": "lo", "fn": "min", "column": "ts"}, {"name": "hi", "fn": "max", "column": "ts"},
        {"name": "users", "fn": "n_unique", "column": "user"}]}, df=df)
    got = {r["country"]: r for r in out.to_dicts()}
    assert got["DE"] == {"country": "DE", "rows": 2, "n_amount": 2, "total": 17.0, "avg": 8.5, "lo": 2,
                         "hi": 3, "users": 1}
    # all amounts null: sum of nothing is 0, mean is null; n_unique skips the null user
    assert got["US"] == {"country": "US", "rows": 2, "n_amount": 0, "total": 0.0, "avg": None, "lo": 5,
                         "hi": 6, "users": 1}
    assert got[None]["rows"] == 1 and out.schema["rows"] == pl.Int64 and out.schema["users"] == pl.Int64


STRINGS = pl.DataFrame({
    "i": ["1", " 2 ", "x", None], "f": ["1.5", "2", "nan?", "3e2"], "b": ["true", "No", "1", "maybe"],
    "d": ["2026-01-02", "2026-01-03 10:00:00", "02/01/2026", None],
    "t": ["2026-01-02T03:04:05", "2026-01-02 03:04:05.5", "2026-01-02T05:04:05+02:00", "soon"],
    "n": [1, 2, 3, 4],
})


def test_cast_on_error_null_converts_and_counts(tmp_path: Path) -> None:
    out, res = ingest(tmp_path, {"op": "cast", "on_error": "null", "columns": {
        "i": "int64", "f": "float64", "b": "bool", "d": "date", "t": "datetime", "n": "string"}}, df=STRINGS)
    assert out["i"].to_list() == [1, 2, None, None]
    assert out["f"].to_list() == [1.5, 2.0, None, 300.0]
    assert out["b"].to_list() == [True, False, True, None]
    assert out["d"].to_list() == [date(2026, 1, 2), None, None, None]  # text -> date: YYYY-MM-DD only
    assert out["t"].to_list() == [datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                                  datetime(2026, 1, 2, 3, 4, 5, 500_000, tzinfo=UTC),
                                  datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), None]
    assert out["n"].to_list() == ["1", "2", "3", "4"]
    assert res.cast_failures == {"i": 1, "f": 1, "b": 1, "d": 2, "t": 1, "n": 0}  # nulls are not failures
    assert res.to_metadata()["cast_failures_total"] == 6


def test_cast_numbers_to_datetime_and_back(tmp_path: Path) -> None:
    out, res = ingest(tmp_path, {"op": "cast", "columns": {"n": "datetime"}},
                      {"op": "cast", "columns": {"n": "date", "i": "float64"}, "on_error": "null"},
                      df=STRINGS.with_columns(n=pl.Series([86_400, 172_800, 259_200, 345_601])))
    # epoch seconds; to a date only at midnight (1, 2, 3 days, then 4 days and 1 s: not midnight)
    assert out["n"].to_list() == [date(1970, 1, 2), date(1970, 1, 3), date(1970, 1, 4), None]
    assert res.cast_failures == {"n": 1, "i": 1}


def test_cast_on_error_fail_names_column_and_value_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out" / "result.parquet"
    with pytest.raises(CastError, match=r"transform #1 \(cast\).*'i'.*'x'") as err:
        run_ingest(write(STRINGS, tmp_path / "in" / "s.csv"), str(out),
                   cfg({"op": "select", "columns": ["i", "n"]}, {"op": "cast", "columns": {"i": "int64"}}))
    assert err.value.column == "i" and err.value.index == 1
    assert not out.exists() and os.listdir(out.parent) == []


# --- formats, files and folders -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["events.csv", "events.parquet", "events.jsonl"])
def test_every_format_gives_the_same_rows(tmp_path: Path, name: str) -> None:
    out, res = ingest(tmp_path, {"op": "filter", "sql": "n_items > 0"}, name=name)
    assert out.equals(EVENTS.filter(pl.col("n_items") > 0)) and res.source_files == 1


@pytest.mark.parametrize("suffix", ["csv", "parquet", "jsonl"])
def test_folder_of_parts_equals_single_file(tmp_path: Path, suffix: str) -> None:
    for i, part in enumerate(EVENTS.iter_slices(2)):
        write(part, tmp_path / "in" / f"part-{i}.{suffix}")
    (tmp_path / "in" / "_SUCCESS").write_text("")
    res = run_ingest(str(tmp_path / "in"), str(tmp_path / "out.parquet"), cfg())
    assert read_table(str(tmp_path / "out.parquet")).equals(EVENTS)
    assert (res.source_files, res.rows_in, res.rows_out) == (3, 6, 6)


def test_declared_format_reads_an_unknown_suffix(tmp_path: Path) -> None:
    src = tmp_path / "dump.txt"
    EVENTS.write_csv(src)
    with pytest.raises(ArtifactError, match="cannot infer the format"):
        run_ingest(str(src), str(tmp_path / "o.parquet"), cfg())
    res = run_ingest(str(src), str(tmp_path / "o.parquet"), cfg(format="csv"))
    assert res.rows_out == 6


def test_remote_output_uri_is_uploaded_through_fsspec(tmp_path: Path) -> None:
    src = write(EVENTS, tmp_path / "e.parquet")
    res = run_ingest(src, "memory://bucket/run-1/out.parquet", cfg({"op": "select", "columns": ["id"]}))
    fs = fsspec.filesystem("memory")
    with fs.open("/bucket/run-1/out.parquet", "rb") as fh:
        assert pl.read_parquet(fh)["id"].to_list() == EVENTS["id"].to_list()
    assert res.rows_out == 6 and [p for p in fs.ls("/bucket/run-1", detail=False) if ".tmp-" in p] == []


# --- errors ---------------------------------------------------------------------------------------

def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="source not found"):
        run_ingest(str(tmp_path / "nope.parquet"), str(tmp_path / "o.parquet"), cfg())


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".hidden.csv").write_text("a\n1\n")
    with pytest.raises(ArtifactError, match="holds no data files"):
        run_ingest(str(tmp_path / "empty"), str(tmp_path / "o.parquet"), cfg())


@pytest.mark.parametrize(("name", "good", "bad"), [
    ("csv", "id,user\n1,a\n", "id,user\n2,b\n3,c,x,y\n"),
    ("jsonl", '{"id": 1}\n', '{"id": 2}\n{"id": \n'),
    ("parquet", None, b"PAR1 this is not parquet"),
])
@pytest.mark.parametrize("bad_first", [True, False])
def test_malformed_file_is_named(tmp_path: Path, name: str, good: str | None, bad: str | bytes,
                                 bad_first: bool) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    good_path, bad_path = folder / f"b-good.{name}", folder / f"{'a' if bad_first else 'c'}-bad.{name}"
    if good is None:
        EVENTS.write_parquet(good_path)
    else:
        good_path.write_text(good)
    bad_path.write_bytes(bad if isinstance(bad, bytes) else bad.encode())
    with pytest.raises(ArtifactError, match=f"malformed {name} file .*{bad_path.name}"):
        run_ingest(str(folder), str(tmp_path / "o.parquet"), cfg())
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize(("transforms", "index", "op", "column"), [
    ([{"op": "select", "columns": ["id", "price"]}], 0, "select", "price"),
    ([{"op": "rename", "mapping": {"country": "cc"}}, {"op": "filter", "sql": "country = 'DE'"}], 1,
     "filter", "country"),
    ([{"op": "derive", "name": "x", "sql": "amount * qty"}], 0, "derive", "qty"),
    ([{"op": "cast", "columns": {"amnt": "int64"}}], 0, "cast", "amnt"),
    ([{"op": "dedupe", "keys": ["user"], "order_by": ["when"]}], 0, "dedupe", "when"),
    ([{"op": "aggregate", "by": ["user"], "aggs": [{"name": "n", "fn": "sum", "column": "cost"}]}], 0,
     "aggregate", "cost"),
    ([{"op": "aggregate", "by": ["user"], "aggs": [{"name": "n", "fn": "count"}]},
      {"op": "select", "columns": ["amount"]}], 1, "select", "amount"),
])
def test_unknown_column_names_index_op_and_column(tmp_path: Path, transforms: list[dict[str, Any]],
                                                  index: int, op: str, column: str) -> None:
    expected = rf"transform #{index} \({op}\): unknown column '{column}'"
    with pytest.raises(TransformError, match=expected) as err:
        ingest(tmp_path, *transforms)
    assert (err.value.index, err.value.op, err.value.column) == (index, op, column)
    assert not (tmp_path / "out" / "result.parquet").exists()


def test_join_key_missing_in_joined_table(tmp_path: Path) -> None:
    users = write(USERS.rename({"user": "name"}), tmp_path / "dim" / "users.parquet")
    with pytest.raises(TransformError, match=r"#0 \(join\): unknown column 'user' in .*users.parquet"):
        ingest(tmp_path, {"op": "join", "uri": users, "on": ["user"]})


def test_type_error_in_sql_fails_without_output_and_keeps_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "out" / "result.parquet"
    ingest(tmp_path, {"op": "select", "columns": ["id"]})
    before = out.read_bytes()
    with pytest.raises(IngestError):
        ingest(tmp_path, {"op": "filter", "sql": "country > 5"})
    assert out.read_bytes() == before and sorted(os.listdir(out.parent)) == ["result.parquet"]


# --- result and metadata --------------------------------------------------------------------------

def test_result_metadata_is_flat_and_counts_rows(tmp_path: Path) -> None:
    out, res = ingest(tmp_path, {"op": "filter", "sql": "amount > 3"},
                      {"op": "cast", "columns": {"n_items": "float64"}}, name="e.jsonl")
    meta = res.to_metadata()
    assert all(isinstance(v, str | int | float) for v in meta.values())
    assert json.loads(json.dumps(meta)) == meta
    assert (meta["rows_in"], meta["rows_out"], meta["source_files"]) == (6, out.height, 1) and out.height == 3
    assert meta["engine"] == ENGINE and meta["data_version"] == "2026-01-01" and meta["seconds"] >= 0
    assert json.loads(meta["columns"])["n_items"] == "Float64" and meta["n_columns"] == len(EVENTS.columns)
    assert json.loads(meta["cast_failures"]) == {"n_items": 0}
