"""Ingestion benchmark: the same filter / derive / join / aggregate -> Parquet with our component (polars and
duckdb engines), raw polars, raw duckdb and raw pyspark (local[*]) on generated demo events, read from Parquet
(default) or CSV. Our runs include the row account (the files' rows counted, rows out of each count-changing
transform counted); its figures are printed and must agree between our engines.

    python -m bench ingest [--rows 10000000] [--entities 100000] [--repeat 3] [--format parquet|csv]
                           [--no-spark] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import polars as pl

from components._core.artifacts import read_table
from components.data.events import EventsConfig, generate_entities, generate_events
from components.ingestion import IngestConfig, run_ingest

MIN_AMOUNT, COUNTRY_OUT = 10, "IN"
GOAL_VS_SPARK, GOAL_VS_RAW = 15.0, 1.5
ENGINES = ("ours", "ours_duckdb", "polars", "duckdb", "pyspark")  # ours: polars engine; ours_duckdb: duckdb (default)


def ingest_config(entities: str, engine: str = "polars") -> IngestConfig:
    """Our component's config for the benchmark's query."""
    return IngestConfig.parse({"data_version": "bench", "engine": engine, "transforms": [
        {"op": "filter", "sql": f"amount > {MIN_AMOUNT} AND country <> '{COUNTRY_OUT}'"},
        {"op": "derive", "name": "per_item", "sql": "amount / n_items"},
        {"op": "join", "uri": entities, "on": ["entity_id"], "how": "inner"},
        {"op": "aggregate", "by": ["country", "segment", "channel"], "aggs": [
            {"name": "n", "fn": "count"}, {"name": "amount_sum", "fn": "sum", "column": "amount"},
            {"name": "per_item_mean", "fn": "mean", "column": "per_item"},
            {"name": "minutes_max", "fn": "max", "column": "session_minutes"}]},
    ]})


SQL = f"""
COPY (
  SELECT country, segment, channel, count(*) AS n, sum(amount) AS amount_sum,
         avg(amount / n_items) AS per_item_mean, max(session_minutes) AS minutes_max
  FROM {{reader}}('{{events}}') JOIN read_parquet('{{entities}}') USING (entity_id)
  WHERE amount > {MIN_AMOUNT} AND country <> '{COUNTRY_OUT}'
  GROUP BY ALL
) TO '{{out}}' (FORMAT parquet)
"""


ACCOUNTS: dict[str, dict[str, Any]] = {}  # our engines' row accounts, last run


def ours(events: str, entities: str, out: str, engine: str = "polars") -> None:
    result = run_ingest(events, out, ingest_config(entities, engine))
    if result.engine != engine:
        raise SystemExit(f"engine {engine} handed the chain to {result.engine}")
    ACCOUNTS[engine] = json.loads(result.to_metadata()["row_account"])


def scan(events: str) -> pl.LazyFrame:
    return pl.scan_csv(events) if events.endswith(".csv") else pl.scan_parquet(events)


def raw_polars(events: str, entities: str, out: str) -> None:
    (scan(events)
     .filter((pl.col("amount") > MIN_AMOUNT) & (pl.col("country") != COUNTRY_OUT))
     .with_columns((pl.col("amount") / pl.col("n_items")).alias("per_item"))
     .join(pl.scan_parquet(entities), on="entity_id", how="inner")
     .group_by("country", "segment", "channel")
     .agg(pl.len().alias("n"), pl.col("amount").sum().alias("amount_sum"),
          pl.col("per_item").mean().alias("per_item_mean"),
          pl.col("session_minutes").max().alias("minutes_max"))
     .sink_parquet(out))


def raw_duckdb(events: str, entities: str, out: str) -> None:
    import duckdb

    reader = "read_csv" if events.endswith(".csv") else "read_parquet"
    with duckdb.connect() as con:
        con.execute(SQL.format(reader=reader, events=events, entities=entities, out=out))


def spark_session() -> object:
    from pyspark.sql import SparkSession

    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    spark = (SparkSession.builder.master("local[*]").appName("bench-ingest")
             .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.ui.enabled", "false").config("spark.driver.memory", "4g")
             .config("spark.sql.shuffle.partitions", str(os.cpu_count() or 2)).getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def raw_pyspark(spark: object, events: str, entities: str, out: str) -> None:
    from pyspark.sql import functions as F

    read = spark.read  # type: ignore[attr-defined]
    df = read.csv(events, header=True, inferSchema=True) if events.endswith(".csv") else read.parquet(events)
    (df.filter((F.col("amount") > MIN_AMOUNT) & (F.col("country") != COUNTRY_OUT))
     .withColumn("per_item", F.col("amount") / F.col("n_items"))
     .join(spark.read.parquet(entities), on="entity_id", how="inner")  # type: ignore[attr-defined]
     .groupBy("country", "segment", "channel")
     .agg(F.count(F.lit(1)).alias("n"), F.sum("amount").alias("amount_sum"),
          F.avg("per_item").alias("per_item_mean"), F.max("session_minutes").alias("minutes_max"))
     .write.mode("overwrite").parquet(out))


def best_times(runs: dict[str, Callable[[], None]], repeat: int) -> dict[str, float]:
    """Best wall time of each run over ``repeat`` rounds (rounds interleave the runs, so noise is shared)."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeat):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main(argv: Sequence[str]) -> dict[str, float]:
    p = argparse.ArgumentParser(prog="python -m bench ingest", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--entities", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=5, help="rounds of the in-process engines (best is kept)")
    p.add_argument("--spark-repeat", type=int, default=2, help="pyspark jobs in one session (best is kept)")
    p.add_argument("--format", choices=["parquet", "csv"], default="parquet", help="format of the events file")
    p.add_argument("--no-spark", action="store_true", help="skip pyspark (no ratio against it)")
    p.add_argument("--workdir", help="keep inputs and outputs here (default: a temporary folder)")
    args = p.parse_args(list(argv))
    work = args.workdir or tempfile.mkdtemp(prefix="bench-ingest-")
    os.makedirs(work, exist_ok=True)
    events, entities = os.path.join(work, f"events.{args.format}"), os.path.join(work, "entities.parquet")
    start = time.perf_counter()
    data = generate_events(EventsConfig.parse({"rows": args.rows, "entities": args.entities}))
    data.write_csv(events) if args.format == "csv" else data.write_parquet(events)
    generate_entities(args.entities).write_parquet(entities)
    print(f"data: {args.rows:,} events, {args.entities:,} entities in {time.perf_counter() - start:.1f} s "
          f"({os.path.getsize(events) / 2**20:.0f} MiB {args.format}), {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    outs = {name: os.path.join(work, f"out_{name}.parquet") for name in ENGINES}
    secs = best_times({
        "ours": lambda: ours(events, entities, outs["ours"]),
        "ours_duckdb": lambda: ours(events, entities, outs["ours_duckdb"], "duckdb"),
        "polars": lambda: raw_polars(events, entities, outs["polars"]),
        "duckdb": lambda: raw_duckdb(events, entities, outs["duckdb"]),
    }, args.repeat)
    startup = cold = 0.0
    if not args.no_spark:
        start = time.perf_counter()
        spark = spark_session()
        startup = time.perf_counter() - start
        jobs = []
        for _ in range(max(1, args.spark_repeat)):
            start = time.perf_counter()
            raw_pyspark(spark, events, entities, outs["pyspark"])
            jobs.append(time.perf_counter() - start)
        spark.stop()  # type: ignore[attr-defined]
        secs["pyspark"], cold = min(jobs), jobs[0]
        print(f"pyspark session start {startup:.1f} s, first job {cold:.1f} s: a fresh pipeline step pays "
              f"{startup + cold:.1f} s; the time below is the best job in a warm session")
    results = {name: read_table(outs[name]) for name in secs}
    for name, s in secs.items():
        print(f"{name:8s} {s:8.3f} s  {args.rows / s / 1e6:7.2f} M rows/s  -> {results[name].height} rows")
    counts = {name: (df.height, int(df["n"].sum())) for name, df in results.items()}
    if len(set(counts.values())) != 1:
        raise SystemExit(f"engines disagree on (rows, joined events): {counts}")
    print(f"row counts agree: {counts['ours'][0]} rows ({counts['ours'][1]:,} joined events) from every engine")
    stages = {e: [(t["op"], t["rows_in"], t["rows_out"]) for t in a["transforms"]] for e, a in ACCOUNTS.items()}
    if len({json.dumps(v) for v in stages.values()}) != 1 or ACCOUNTS["duckdb"]["rows_parsed"] != args.rows:
        raise SystemExit(f"row accounts disagree: {ACCOUNTS}")
    print(f"row account (both engines): {args.rows:,} rows read, " + ", ".join(
        f"{op} {a:,} -> {b:,}" for op, a, b in stages["duckdb"]))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    best_raw = min(("polars", "duckdb"), key=lambda n: secs[n])
    if "pyspark" in secs:
        job, step = secs["pyspark"] / secs["ours"], (startup + cold) / secs["ours"]
        print(f"ratio ours_vs_pyspark_step: {step:.1f}x faster, fresh session: start + first job "
              f"(goal >= {GOAL_VS_SPARK:.0f}x) {verdict(step >= GOAL_VS_SPARK)}")
        print(f"ratio ours_vs_pyspark_job: {job:.1f}x faster, warm session "
              f"(goal >= {GOAL_VS_SPARK:.0f}x) {verdict(job >= GOAL_VS_SPARK)}")
    print(f"ratio ours_vs_raw_polars: {secs['ours'] / secs['polars']:.2f}x the time (component overhead)")
    raw = secs["ours"] / secs[best_raw]
    print(f"ratio ours_vs_best_raw: {raw:.2f}x the time of raw {best_raw} (goal <= {GOAL_VS_RAW}x) "
          f"{verdict(raw <= GOAL_VS_RAW)}")
    if "pyspark" in secs:
        job, step = secs["pyspark"] / secs["ours_duckdb"], (startup + cold) / secs["ours_duckdb"]
        print(f"ratio ours_duckdb_vs_pyspark_step: {step:.1f}x faster, fresh session: start + first job "
              f"(goal >= {GOAL_VS_SPARK:.0f}x) {verdict(step >= GOAL_VS_SPARK)}")
        print(f"ratio ours_duckdb_vs_pyspark_job: {job:.1f}x faster, warm session "
              f"(goal >= {GOAL_VS_SPARK:.0f}x) {verdict(job >= GOAL_VS_SPARK)}")
    print(f"ratio ours_duckdb_vs_raw_duckdb: {secs['ours_duckdb'] / secs['duckdb']:.2f}x the time "
          "(component overhead)")
    raw = secs["ours_duckdb"] / secs[best_raw]
    print(f"ratio ours_duckdb_vs_best_raw: {raw:.2f}x the time of raw {best_raw} (goal <= {GOAL_VS_RAW}x) "
          f"{verdict(raw <= GOAL_VS_RAW)}")
    print(f"ratio ours_duckdb_vs_ours: {secs['ours_duckdb'] / secs['ours']:.2f}x the time of the polars engine")
    return secs


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"
