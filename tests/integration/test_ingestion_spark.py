"""The Spark engine gives exactly the rows of the polars engine, on CSV, Parquet and JSON lines.

Amounts are multiples of 1/4 and item counts powers of two, so sums and means are exact in any order and rows
can be compared exactly. One SparkSession (local[2], loopback) serves the whole module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from components._core.artifacts import read_table
from components.ingestion import CastError, IngestConfig, run_ingest

pytestmark = pytest.mark.slow
spark_engine = pytest.importorskip("components.ingestion.spark_engine")

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
    session = spark_engine.get_session("local[2]")
    yield session
    spark_engine.stop_session()


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
    assert spark_engine.get_session("local[2]") is spark  # the session is reused, not rebuilt
