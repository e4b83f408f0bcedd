"""The duckdb engine gives exactly the rows and dtypes of the polars engine, and fails the same way.

Amounts are multiples of 1/4 and item counts 0 or powers of two, so sums, means and ratios are exact in any
order and rows compare exactly (NaN and inf included).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from components._core.artifacts import ArtifactError, read_table
from components.ingestion import CastError, IngestConfig, IngestError, IngestResult, TransformError, run_ingest
from components.ingestion import duckdb_engine as dd

N = 300
_rng = np.random.default_rng(7)
EVENTS = pl.DataFrame({
    "id": np.arange(N),
    "uid": [f"u{i}" if i < 20 else None for i in _rng.integers(0, 22, N)],
    "amount": [None if i % 17 == 0 else float(v) / 4 for i, v in enumerate(_rng.integers(-40, 400, N))],
    "n_items": _rng.choice([0, 1, 2, 4], N),
    "ts": [("bad" if i % 29 == 0 else f"2026-01-{1 + d:02d} {h:02d}:00:0{i % 10}" + ("+02:00" if i % 3 else ""))
           for i, (d, h) in enumerate(zip(_rng.integers(0, 5, N), _rng.integers(0, 3, N), strict=True))],
    "day": [None if i % 13 == 0 else ("2026-02-30" if i % 31 == 0 else f"2026-02-{1 + i % 9:02d}")
            for i in range(N)],
    "qty": [("x" if i % 23 == 0 else f" {v} ") for i, v in enumerate(_rng.integers(-5, 50, N))],
    "ratio": [("1_0" if i % 19 == 0 else f"{v / 8}") for i, v in enumerate(_rng.integers(-8, 80, N))],
    "flag": _rng.choice(["yes", "No", " true", "0", "maybe", "T"], N),
    "country": _rng.choice(["DE", "FR", "US", ""], N),
}).with_columns(pl.when(pl.col("country") == "").then(None).otherwise(pl.col("country")).alias("country"))
USERS = pl.DataFrame({"uid": [f"u{i}" for i in range(0, 24, 2)], "segment": ["smb", "consumer", "ent"] * 4,
                      "amount": np.arange(12) * 1.5})

ROW_CHAIN: list[dict[str, Any]] = [
    {"op": "cast", "columns": {"ts": "datetime", "day": "date", "qty": "int64", "flag": "bool",
                               "ratio": "float64"}, "on_error": "null"},
    {"op": "cast", "columns": {"n_items": "string", "amount": "int64", "id": "float64"}, "on_error": "null"},
    {"op": "cast", "columns": {"n_items": "int64", "id": "datetime"}},
    {"op": "rename", "mapping": {"country": "cc", "id": "at"}},
    {"op": "derive", "name": "id", "sql": "n_items * 1000 + qty"},
    {"op": "derive", "name": "per_item", "sql": "CASE WHEN n_items > 0 THEN amount / n_items ELSE NULL END"},
    {"op": "derive", "name": "raw_ratio", "sql": "amount / n_items - (qty % 2) / (qty % 2)"},  # inf, NaN
    {"op": "derive", "name": "big", "sql": "amount * 2 >= 100 OR (qty > 40 AND NOT flag)"},
    {"op": "derive", "name": "tag", "sql": "CASE WHEN qty % 3 = 0 THEN lower(cc) || '-' || coalesce(uid, 'none') "
                                           "WHEN amount BETWEEN 10 AND 20 THEN 'mid' ELSE NULL END"},
    {"op": "derive", "name": "score", "sql": "abs(amount - 50) + length(coalesce(uid, '')) - qty % 3"},
    {"op": "filter", "sql": "(cc IN ('DE', 'US') OR cc IS NULL) AND (amount >= -5 OR per_item IS NULL)"},
    {"op": "dedupe", "keys": ["uid", "cc", "flag"], "order_by": ["ts", "qty"], "keep": "last"},
    {"op": "dedupe", "keys": ["uid", "n_items"], "keep": "first"},
    {"op": "dedupe", "keys": ["cc", "qty"], "keep": "last"},
    {"op": "join", "uri": "", "on": ["uid"], "how": "left"},
    {"op": "select", "columns": ["id", "at", "uid", "cc", "segment", "amount", "amount_right", "per_item",
                                 "raw_ratio", "big", "tag", "score", "ts", "day", "qty", "flag", "ratio"]},
]
AGG_CHAIN: list[dict[str, Any]] = [*ROW_CHAIN[:11], {**ROW_CHAIN[14], "how": "inner"}, {
    "op": "aggregate", "by": ["cc", "segment", "flag"], "aggs": [
        {"name": "rows", "fn": "count"}, {"name": "total", "fn": "sum", "column": "amount"},
        {"name": "avg_item", "fn": "mean", "column": "per_item"},
        {"name": "max_ratio", "fn": "max", "column": "raw_ratio"},  # NaN skipped unless all NaN
        {"name": "min_ratio", "fn": "min", "column": "raw_ratio"},
        {"name": "first_ts", "fn": "min", "column": "ts"}, {"name": "max_qty", "fn": "max", "column": "qty"},
        {"name": "last_day", "fn": "max", "column": "day"}, {"name": "users", "fn": "n_unique", "column": "uid"},
        {"name": "n_big", "fn": "sum", "column": "big"}, {"name": "share_big", "fn": "mean", "column": "big"},
        {"name": "n_tag", "fn": "count", "column": "tag"}, {"name": "fractions", "fn": "sum", "column": "ratio"},
        {"name": "min_tag", "fn": "min", "column": "tag"}]},
    {"op": "filter", "sql": "rows > 0"},
    {"op": "dedupe", "keys": ["cc", "segment"], "order_by": ["rows", "flag"]}]  # flag is unique per cc, segment
KINDS = ["csv", "parquet", "jsonl", "csv-folder", "parquet-folder", "jsonl-folder"]
ENGINES = ["polars", "duckdb"]


def write_source(tmp_path: Path, kind: str, df: pl.DataFrame = EVENTS) -> str:
    folder = tmp_path / "src"
    folder.mkdir(exist_ok=True)
    fmt = kind.removesuffix("-folder")
    writers: dict[str, Callable[[pl.DataFrame, Path], None]] = {
        "csv": lambda d, p: d.write_csv(p), "parquet": lambda d, p: d.write_parquet(p),
        "jsonl": lambda d, p: d.write_ndjson(p)}
    if kind.endswith("-folder"):  # parts listed out of write order: input order is the sorted file names
        for i, part in enumerate(df.iter_slices(len(df) // 3 + 1)):
            writers[fmt](part, folder / f"part-{2 - i}.{fmt}")
        return str(folder)
    path = folder / f"events.{fmt}"
    writers[fmt](df, path)
    return str(path)


def config(chain: list[dict[str, Any]], engine: str, users: str = "") -> IngestConfig:
    transforms = [{**t, "uri": users} if t["op"] == "join" else t for t in chain]
    return IngestConfig.parse({"data_version": "t", "engine": engine, "transforms": transforms})


def both(src: str, out: Path, chain: list[dict[str, Any]], users: str = ""
         ) -> tuple[pl.DataFrame, IngestResult, pl.DataFrame, IngestResult]:
    """Run the chain with each engine; the outputs read back and the results."""
    by_polars = run_ingest(src, str(out / "polars.parquet"), config(chain, "polars", users))
    by_duckdb = run_ingest(src, str(out / "duckdb.parquet"), config(chain, "duckdb", users))
    return (read_table(str(out / "polars.parquet")), by_polars, read_table(str(out / "duckdb.parquet")),
            by_duckdb)


def assert_same_rows(ours: pl.DataFrame, theirs: pl.DataFrame) -> None:
    assert ours.schema == theirs.schema
    assert_frame_equal(ours.sort(ours.columns, nulls_last=True), theirs.sort(theirs.columns, nulls_last=True),
                       check_exact=True)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chain", [ROW_CHAIN, AGG_CHAIN], ids=["rows", "aggregate"])
def test_duckdb_rows_equal_polars_rows(tmp_path: Path, kind: str, chain: list[dict[str, Any]],
                                       caplog: pytest.LogCaptureFixture) -> None:
    src = write_source(tmp_path, kind)
    users = str(tmp_path / "users.csv")
    USERS.write_csv(users)
    with caplog.at_level(logging.WARNING):
        ours, by_polars, theirs, by_duckdb = both(src, tmp_path, chain, users)
    assert not caplog.records  # no fallback: duckdb ran the chain
    assert_same_rows(ours, theirs)
    assert ours.height > 5 and (tmp_path / "duckdb.parquet").is_file()
    assert by_duckdb.engine == "duckdb" and by_duckdb.columns == by_polars.columns
    assert (by_duckdb.rows_in, by_duckdb.rows_out) == (by_polars.rows_in, by_polars.rows_out) == (N, ours.height)
    assert by_duckdb.cast_failures == by_polars.cast_failures
    assert by_polars.cast_failures["ts"] == 11 and by_polars.cast_failures["day"] > 0
    assert by_duckdb.account and by_polars.account  # the same rows into and out of every transform
    assert by_duckdb.account.stages == by_polars.account.stages and by_duckdb.account.rows_parsed == N
    if chain is ROW_CHAIN:
        assert ours.schema["ts"] == pl.Datetime("us", "UTC") and ours.schema["at"] == pl.Datetime("us", "UTC")
        assert ours["raw_ratio"].is_infinite().any() and ours["raw_ratio"].is_nan().any()


def test_dedupe_without_order_by_follows_file_and_row_order(tmp_path: Path) -> None:
    df = pl.DataFrame({"k": ["a", "b", "a", "b", "a", "c"] * 50, "v": range(300)})
    src = write_source(tmp_path, "csv-folder", df)
    for keep in ("first", "last"):
        ours, _, theirs, _ = both(src, tmp_path, [{"op": "dedupe", "keys": ["k"], "keep": keep}])
        assert_same_rows(ours, theirs)
        assert sorted(theirs["v"]) == ([202, 203, 205] if keep == "first" else [95, 99, 100])


def test_every_cast_target_from_every_source_dtype(tmp_path: Path) -> None:
    stamp = datetime(2026, 3, 4, 5, 6, 7, 890_123)
    df = pl.DataFrame({
        "i": [1, -2, None, 3_000_000_000], "f": [1.5, -2.75, float("nan"), 1e300], "b": [True, False, None, True],
        "s": ["1", " 2.5 ", "2026-01-02", "yes"], "d": [stamp.date(), None, stamp.date(), stamp.date()],
        "t": [stamp, None, stamp - timedelta(days=40_000), stamp],
        "tz": pl.Series([stamp, stamp, None, stamp]).dt.replace_time_zone("UTC").dt.cast_time_unit("ns"),
    })
    src = write_source(tmp_path, "parquet", df)
    for to in ("int64", "float64", "string", "bool", "datetime", "date"):
        chain = [{"op": "cast", "columns": dict.fromkeys(df.columns, to), "on_error": "null"}]
        ours, by_polars, theirs, by_duckdb = both(src, tmp_path / to, chain)
        assert_same_rows(ours, theirs)
        assert by_duckdb.cast_failures == by_polars.cast_failures, to
    for engine in ENGINES:  # no rule turns a datetime into a bool: every value fails
        with pytest.raises(CastError, match=r"column 't': 3 value\(s\) cannot convert to bool"):
            run_ingest(src, str(tmp_path / "o.parquet"), config([{"op": "cast", "columns": {"t": "bool"}}], engine))


def random_texts(n: int, seed: int = 3) -> list[str]:
    """Short strings near the grammar of numbers, booleans and ISO dates (most of them almost valid)."""
    rng = np.random.default_rng(seed)
    pieces = ["0", "1", "2", "9", "12", "2026", "0999", "-", "+", ".", "e", "E", "_", " ", "\u00a0", "\t", ":",
              "T", "t", "Z", "inf", "NaN", "yes", "N", "02", "13", "29", "30", "23", "24", "59", "60", "+02:00"]
    return ["".join(rng.choice(pieces, rng.integers(0, 8))) for _ in range(n)]


ISO_TEXTS = ["2026-01-02T03:04:05", "2026-01-02 03:04:05.5", "2026-02-29", "2024-02-29", "2026-01-02 24:00:00",
             "2026-01-02 23:59:60", "0999-01-01", " 2026-01-02 ", "2026-01-02T03:04:05.1234567", "2026-13-01",
             "2026-01-02 03:04:05+00:00", "2026-01-02t03:04:05", "2026-01-02T03:04:05.123456", "1000-01-01"]


def test_string_casts_follow_polars_grammar(tmp_path: Path) -> None:
    texts = ["5", "+5", "-0", "007", "1_000", "1e3", "1.", ".5", "0x10", "inf", "-Infinity", "NaN", "1e400",
             "\u00a05\u3000", "\u200b5", "9223372036854775808", "t", "Y", "NO", "2026-01-02T03:04:05.123456789Z",
             "2026-01-02 03:04", "2026-01-02T03:04:05-0130", "2026-1-2", "20260102", "", " ", None,
             *ISO_TEXTS, *(f"{d}{sep}{h:02d}:{m:02d}:{sec:02d}" for d in ("2026-03-01", "1999-12-31")
                           for sep in ("T", " ") for h, m, sec in ((0, 0, 0), (23, 59, 59), (12, 30, 5))),
             *random_texts(4000)]
    src = write_source(tmp_path, "parquet", pl.DataFrame({"s": texts}))
    for to in ("int64", "float64", "bool", "datetime", "date"):
        chain: list[dict[str, Any]] = [{"op": "derive", "name": "c", "sql": "s"},
                                       {"op": "cast", "columns": {"c": to}, "on_error": "null"}]
        ours, by_polars, theirs, by_duckdb = both(src, tmp_path / to, chain)
        assert_same_rows(ours, theirs)
        assert by_duckdb.cast_failures == by_polars.cast_failures, to
        assert ours["c"].null_count() < len(texts) - 3, to  # some values do convert


def test_parquet_source_keeps_its_dtypes(tmp_path: Path) -> None:
    df = pl.DataFrame({"k": pl.Series([1, 2, 1], dtype=pl.UInt16), "f": pl.Series([0.5, 1.5, 2.5], dtype=pl.Float32),
                       "t": pl.Series([datetime(2026, 1, 1, tzinfo=UTC)] * 3).dt.cast_time_unit("ns"),
                       "l": [[1, 2], [], None], "st": [{"a": 1, "b": "x"}, None, {"a": 3, "b": None}]})
    src = write_source(tmp_path, "parquet", df)
    ours, _, theirs, by_duckdb = both(src, tmp_path, [
        {"op": "derive", "name": "g", "sql": "f * 2"}, {"op": "dedupe", "keys": ["k"], "keep": "last"}])
    assert_same_rows(ours, theirs)
    assert by_duckdb.engine == "duckdb" and theirs.schema["t"] == pl.Datetime("ns", "UTC")


def test_unsupported_dtype_falls_back_to_polars(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    df = pl.DataFrame({"k": ["a", "b"], "c": pl.Series(["x", "y"], dtype=pl.Categorical)})
    src = write_source(tmp_path, "parquet", df)
    with caplog.at_level(logging.WARNING):
        ours, _, theirs, by_duckdb = both(src, tmp_path, [{"op": "select", "columns": ["c", "k"]}])
    assert_same_rows(ours, theirs)
    assert by_duckdb.engine == "polars" and "no exact DuckDB equivalent" in caplog.text


def test_case_insensitive_name_clash_falls_back_to_polars(tmp_path: Path) -> None:
    src = write_source(tmp_path, "parquet", pl.DataFrame({"a": [1, 2], "A": [3, 4]}))
    ours, _, theirs, by_duckdb = both(src, tmp_path, [{"op": "derive", "name": "s", "sql": "a + A"}])
    assert_same_rows(ours, theirs)
    assert by_duckdb.engine == "polars" and theirs["s"].to_list() == [4, 6]


def test_remote_output_is_uploaded(tmp_path: Path) -> None:
    src = write_source(tmp_path, "csv")
    res = run_ingest(src, "memory://bucket/duck/out.parquet", config([{"op": "select", "columns": ["id"]}], "duckdb"))
    fs = fsspec.filesystem("memory")
    with fs.open("/bucket/duck/out.parquet", "rb") as fh:
        assert pl.read_parquet(fh)["id"].to_list() == EVENTS["id"].to_list()
    assert res.engine == "duckdb" and [p for p in fs.ls("/bucket/duck", detail=False) if ".tmp-" in p] == []


def test_type_mapping() -> None:
    assert dd.duck_type(pl.Datetime("us", "UTC")) == "TIMESTAMPTZ" and dd.duck_type(pl.Int64) == "BIGINT"
    assert dd.duck_type(pl.Struct({"a b": pl.List(pl.String)})) == 'STRUCT("a b" VARCHAR[])'
    for dt in (pl.Datetime("ms"), pl.Datetime("us", "Europe/Berlin"), pl.Duration("us"), pl.Categorical(),
               pl.Null(), pl.Array(pl.Int64, 2)):
        with pytest.raises(dd.Unsupported):
            dd.duck_type(dt)


# --- errors: the same exception, message and (no) output from both engines ---------------------------


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("transforms", "index", "op", "column"), [
    ([{"op": "select", "columns": ["id", "price"]}], 0, "select", "price"),
    ([{"op": "rename", "mapping": {"country": "cc"}}, {"op": "filter", "sql": "country = 'DE'"}], 1,
     "filter", "country"),
    ([{"op": "cast", "columns": {"amnt": "int64"}}], 0, "cast", "amnt"),
    ([{"op": "aggregate", "by": ["uid"], "aggs": [{"name": "n", "fn": "count"}]},
      {"op": "dedupe", "keys": ["uid"], "order_by": ["amount"]}], 1, "dedupe", "amount"),
])
def test_unknown_column(tmp_path: Path, engine: str, transforms: list[dict[str, Any]], index: int, op: str,
                        column: str) -> None:
    out = tmp_path / "out.parquet"
    with pytest.raises(TransformError, match=rf"transform #{index} \({op}\): unknown column '{column}'") as err:
        run_ingest(write_source(tmp_path, "csv"), str(out), config(transforms, engine))
    assert (err.value.index, err.value.column) == (index, column) and not out.exists()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("column", "to", "value"), [("qty", "int64", "'x'"), ("ts", "datetime", "'bad'"),
                                                     ("ratio", "float64", "'1_0'")])
@pytest.mark.parametrize("kind", ["csv", "parquet", "jsonl"])
def test_failing_cast_names_column_and_value_and_writes_nothing(tmp_path: Path, engine: str, column: str, to: str,
                                                                value: str, kind: str) -> None:
    out = tmp_path / "out" / "result.parquet"
    out.parent.mkdir()
    chain: list[dict[str, Any]] = [{"op": "filter", "sql": "n_items >= 0"},
                                   {"op": "cast", "columns": {column: to, "n_items": "float64"}},
                                   {"op": "derive", "name": "x", "sql": "1"}]
    with pytest.raises(CastError, match=rf"transform #1 \(cast\): column '{column}': \d+ value\(s\) cannot "
                                        rf"convert to {to}, e\.g\. {value}") as err:
        run_ingest(write_source(tmp_path, kind), str(out), config(chain, engine))
    assert err.value.column == column and os.listdir(out.parent) == []


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_malformed_file_past_the_inferred_rows_is_named(tmp_path: Path, engine: str, kind: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    rows = 10_050  # past the rows polars infers the schema from: the bad value surfaces while running
    if kind == "csv":
        (folder / "a-good.csv").write_text("id,v\n1,2\n")
        (folder / "b-bad.csv").write_text("id,v\n" + "".join(f"{i},{i}\n" for i in range(rows)) + "7,oops\n")
    else:
        (folder / "a-good.jsonl").write_text('{"id": 1, "v": 2}\n')
        (folder / "b-bad.jsonl").write_text("".join(f'{{"id": {i}, "v": {i}}}\n' for i in range(rows))
                                            + '{"id": 7, "v": "oops"}\n')
    with pytest.raises(ArtifactError, match=f"malformed {kind} file .*b-bad.{kind}"):
        run_ingest(str(folder), str(tmp_path / "o.parquet"), config([], engine))
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("name", "content"), [("csv", "id,user\n2,b\n3,c,x,y\n"), ("jsonl", '{"id": 2}\n{"id": \n'),
                                               ("parquet", "PAR1 this is not parquet")])
def test_malformed_file_is_named(tmp_path: Path, engine: str, name: str, content: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / f"x-bad.{name}").write_text(content)
    with pytest.raises(ArtifactError, match=f"malformed {name} file .*x-bad.{name}"):
        run_ingest(str(folder), str(tmp_path / "o.parquet"), config([], engine))


@pytest.mark.parametrize("engine", ENGINES)
def test_type_error_in_sql_keeps_previous_output(tmp_path: Path, engine: str) -> None:
    src, out = write_source(tmp_path, "parquet"), tmp_path / "out" / "result.parquet"
    run_ingest(src, str(out), config([{"op": "select", "columns": ["id"]}], engine))
    before = out.read_bytes()
    with pytest.raises(IngestError):
        run_ingest(src, str(out), config([{"op": "filter", "sql": "country > 5"}], engine))
    assert out.read_bytes() == before and sorted(os.listdir(out.parent)) == ["result.parquet"]


def test_sql_duckdb_cannot_bind_names_the_transform(tmp_path: Path) -> None:
    chain = [{"op": "filter", "sql": "n_items > 0"}, {"op": "derive", "name": "u", "sql": "initcap(uid)"}]
    with pytest.raises(TransformError, match=r"transform #1 \(derive\): .*initcap") as err:
        run_ingest(write_source(tmp_path, "csv"), str(tmp_path / "o.parquet"), config(chain, "duckdb"))
    assert err.value.index == 1 and not (tmp_path / "o.parquet").exists()
