"""The Spark engine gives exactly the rows of the polars engine, on CSV, Parquet and JSON lines, the same edge
case behaviour and the same cast rule.

Amounts are multiples of 1/4 and item counts powers of two, so sums and means are exact in any order and rows
can be compared exactly. One SparkSession (local[2], loopback) serves the whole module. Without pyspark or Java
the tests skip, and fail under ``CATALOG_REQUIRE_SERVERS=1`` (set by ``scripts/test``, so CI never skips them).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from components._core.artifacts import read_table
from components.ingestion import CastError, IngestConfig, run_ingest
from components.ingestion.account import RowAccountError
from tests.unit.test_ingestion_edge_cases import CASES, DATA, TRICKY, by_the_rule, cast_all, run_case, write_tool_files

pytestmark = pytest.mark.slow


def spark_session() -> Any:
    """The shared local[2] session; skips without pyspark or Java, or fails under CATALOG_REQUIRE_SERVERS=1."""
    try:
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise RuntimeError("no Java runtime (java not on PATH, JAVA_HOME unset); install openjdk-17-jre")
        from components.ingestion import spark_engine

        return spark_engine.get_session("local[2]")
    except Exception as err:  # ImportError, or the JVM gateway failing to start
        if os.environ.get("CATALOG_REQUIRE_SERVERS") == "1":
            pytest.fail(f"the pyspark tests need pyspark and Java: {type(err).__name__}: {err}")
        pytest.skip(f"pyspark or Java missing: {err}")


def stop_spark() -> None:
    from components.ingestion import spark_engine

    spark_engine.stop_session()

N = 400
_rng = np.random.default_rng(11)
EVENTS = pl.DataFrame({
    "id": np.arange(N),
    "uid": [f"u{i}" if i < 25 else None for i in _rng.integers(0, 27, N)],
    "amount": [None if i % 17 == 0 else float(v) / 4 for i, v in enumerate(_rng.integers(0, 400, N))],
    "n_items": _rng.choice([0, 1, 2, 4], N),
    "ts": [("bad" if i % 29 == 0 else f"2026-01-{1 + d:02d} {h:02d}:00:00")
           for i, (d, h) in enumerate(zip(_rng.integers(0, 5, N), _rng.integers(0, 3, N), strict=True))],
    "qty": [("x" if i % 23 == 0 else f" {v} ") for i, v in enumerate(_rng.integers(-5, 50, N))],
    "flag": _rng.choice(["yes", "no", "true", "0", "maybe"], N),
    "country": _rng.choice(["DE", "FR", "US", ""], N),
}).with_columns(pl.when(pl.col("country") == "").then(None).otherwise(pl.col("country")).alias("country"))
USERS = pl.DataFrame({"uid": [f"u{i}" for i in range(0, 30, 2)], "segment": ["smb", "consumer", "ent"] * 5,
                      "amount": np.arange(15) * 1.5})

ROW_CHAIN: list[dict[str, Any]] = [
    {"op": "cast", "columns": {"ts": "datetime", "qty": "int64", "flag": "bool"}, "on_error": "null"},
    {"op": "rename", "mapping": {"country": "cc"}},
    {"op": "derive", "name": "per_item", "sql": "CASE WHEN n_items > 0 THEN amount / n_items ELSE NULL END"},
    {"op": "derive", "name": "big", "sql": "amount * 2 >= 100 OR (qty > 40 AND NOT flag)"},
    {"op": "derive", "name": "tag", "sql": "CASE WHEN id % 3 = 0 THEN lower(cc) || '-' || coalesce(uid, 'none') "
                                           "WHEN amount BETWEEN 10 AND 20 THEN 'mid' ELSE NULL END"},
    {"op": "derive", "name": "score", "sql": "abs(amount - 50) + length(coalesce(uid, '')) - n_items % 3"},
    {"op": "filter", "sql": "cc IN ('DE', 'US') AND (amount >= 1 OR per_item IS NULL) AND cc <> 'FR'"},
    {"op": "dedupe", "keys": ["uid", "cc"], "order_by": ["ts", "qty"], "keep": "last"},
    {"op": "dedupe", "keys": ["uid", "n_items"], "keep": "first"},
    {"op": "join", "uri": "", "on": ["uid"], "how": "left"},
    {"op": "select", "columns": ["id", "uid", "cc", "segment", "amount", "amount_right", "per_item", "big",
                                 "tag", "score", "ts", "qty", "flag"]},
]
AGG_CHAIN: list[dict[str, Any]] = [*ROW_CHAIN[:-2], {**ROW_CHAIN[-2], "how": "inner"}, ROW_CHAIN[-1], {
    "op": "aggregate", "by": ["cc", "segment"], "aggs": [
        {"name": "rows", "fn": "count"}, {"name": "total", "fn": "sum", "column": "amount"},
        {"name": "avg_item", "fn": "mean", "column": "per_item"},
        {"name": "first_ts", "fn": "min", "column": "ts"}, {"name": "max_qty", "fn": "max", "column": "qty"},
        {"name": "users", "fn": "n_unique", "column": "uid"},
        {"name": "n_flag", "fn": "count", "column": "flag"}]}]


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    session = spark_session()
    yield session
    stop_spark()


def write_source(tmp_path: Path, kind: str) -> str:
    folder = tmp_path / "src"
    folder.mkdir()
    if kind == "parquet-folder":
        for i, part in enumerate(EVENTS.iter_slices(N // 3 + 1)):
            part.write_parquet(folder / f"part-{i}.parquet")
        return str(folder)
    path = folder / f"events.{kind}"
    {"csv": EVENTS.write_csv, "parquet": EVENTS.write_parquet, "jsonl": EVENTS.write_ndjson}[kind](path)
    return str(path)


def config(chain: list[dict[str, Any]], users: str, engine: str) -> IngestConfig:
    transforms = [{**t, "uri": users} if t["op"] == "join" else t for t in chain]
    return IngestConfig.parse({"data_version": "t", "engine": engine, "spark_master": "local[2]",
                               "transforms": transforms})


@pytest.mark.parametrize("kind", ["csv", "parquet", "jsonl", "parquet-folder"])
@pytest.mark.parametrize("chain", [ROW_CHAIN, AGG_CHAIN], ids=["rows", "aggregate"])
def test_spark_rows_equal_polars_rows(tmp_path: Path, spark: Any, kind: str,
                                      chain: list[dict[str, Any]]) -> None:
    src = write_source(tmp_path, kind)
    users = str(tmp_path / "users.csv")
    USERS.write_csv(users)
    by_polars = run_ingest(src, str(tmp_path / "polars.parquet"), config(chain, users, "polars"))
    by_spark = run_ingest(src, str(tmp_path / "spark.parquet"), config(chain, users, "spark"), spark=spark)
    assert (tmp_path / "spark.parquet").is_dir() and (tmp_path / "polars.parquet").is_file()
    ours, theirs = read_table(str(tmp_path / "polars.parquet")), read_table(str(tmp_path / "spark.parquet"))
    assert ours.schema == theirs.schema
    assert ours.height > 5 and ours.sort(ours.columns).equals(theirs.sort(theirs.columns))
    assert by_spark.columns == by_polars.columns and by_spark.engine == "spark"
    assert (by_spark.rows_in, by_spark.rows_out) == (by_polars.rows_in, by_polars.rows_out)
    assert (by_polars.rows_in, by_polars.rows_out) == (N, ours.height)
    assert by_spark.cast_failures == by_polars.cast_failures and by_polars.cast_failures["ts"] == 14


def test_spark_cast_failure_raises_before_writing(tmp_path: Path, spark: Any) -> None:
    src = write_source(tmp_path, "parquet")
    cfg = IngestConfig.parse({"data_version": "t", "engine": "spark",
                              "transforms": [{"op": "cast", "columns": {"qty": "int64"}}]})
    with pytest.raises(CastError, match=r"#0 \(cast\): column 'qty'.* e\.g\. 'x'"):
        run_ingest(src, str(tmp_path / "out"), cfg, spark=spark)
    assert not (tmp_path / "out").exists()
    assert spark_session() is spark  # the session is reused, not rebuilt


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sources")
    for f in DATA.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    write_tool_files(folder)
    return folder


@pytest.mark.parametrize("name", list(CASES))
def test_spark_edge_case(sources: Path, tmp_path: Path, spark: Any, name: str) -> None:
    run_case(CASES[name], sources, tmp_path / "out", "spark", spark=spark)


def test_spark_cast_rule_on_tricky_values(tmp_path: Path, spark: Any) -> None:
    src = tmp_path / "tricky.parquet"
    TRICKY.write_parquet(src)
    got, failures = cast_all(str(src), tmp_path / "out", "spark", spark)
    assert_frame_equal(got, by_the_rule(), check_exact=True)
    assert sum(failures.values()) > 0


def test_spark_row_account_matches_polars(tmp_path: Path, spark: Any) -> None:
    src = write_source(tmp_path, "csv")
    users = str(tmp_path / "users.csv")
    USERS.write_csv(users)
    accounts = {engine: json.loads(run_ingest(src, str(tmp_path / engine), config(AGG_CHAIN, users, engine),
                                              spark=spark).to_metadata()["row_account"])
                for engine in ("polars", "spark")}
    assert accounts["spark"]["transforms"] == accounts["polars"]["transforms"]
    assert accounts["spark"]["joined"] == accounts["polars"]["joined"] == {"join #9": len(USERS)}
    assert [t["counted"] for t in accounts["spark"]["transforms"]].count(True) == 5  # filter, 2 dedupes, join, agg


def test_spark_parser_count_is_checked_against_the_file(tmp_path: Path, spark: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader that drops rows (here: Spark told to skip a row) is caught, naming the file."""
    from components.ingestion import spark_engine

    src = write_source(tmp_path, "jsonl")
    real = spark_engine.read
    monkeypatch.setattr(spark_engine, "read", lambda s, table, ordered=False: real(s, table, ordered).limit(N - 1))
    with pytest.raises(RowAccountError, match=rf"the spark engine read {N - 1} rows from .*events\.jsonl \(source\), "
                                              rf"but the file holds {N} records"):
        run_ingest(src, str(tmp_path / "out"), config([], "", "spark"), spark=spark)
    assert not (tmp_path / "out").exists()
