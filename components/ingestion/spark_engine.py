"""Spark engine: the same transforms with pyspark, written as a Parquet folder.

Semantics follow the polars engine: CSV / JSON lines are read (from the plain files ``sources.open_table``
made) with the schema polars inferred, whole files at a time when a quoted field holds a line break; casts apply
the one cast rule (``components._core.casts``) through an Arrow UDF (failures counted, or raised before
writing); sums of nothing are 0, clashing join columns get ``_right``, ``dedupe`` without ``order_by`` keeps rows
by file and position. Row counts for the account are Spark observations, collected by the write itself. The
session is shared: ``get_session`` reuses the active one, ``stop_session`` ends it.

Known difference: Spark's CSV parser turns a ``\r\n`` inside a quoted field into ``\n`` (the other engines keep
the field as written).
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
import pyarrow as pa
from py4j.protocol import Py4JError
from pyspark.errors import AnalysisException, PySparkException
from pyspark.sql import Column, DataFrame, Observation, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from components._core.artifacts import atomic_target, data_files, is_local, local_path, parquet_rows
from components.ingestion.account import SOURCE, EngineRun, RowAccount, Settle, counted_stages, joined
from components.ingestion.casting import arrow_cast, raise_cast_failures
from components.ingestion.sources import Table, diagnose
from components.ingestion.transforms import (
    JOIN_SUFFIX,
    Aggregate,
    Cast,
    Dedupe,
    Derive,
    Filter,
    IngestError,
    Join,
    Rename,
    Select,
    Transform,
    TransformError,
)

log = logging.getLogger(__name__)
FILE, ROW = "__ingest_file", "__ingest_row"  # hidden columns giving input order for dedupe
SPARK_TYPES = {"int64": "bigint", "float64": "double", "string": "string", "bool": "boolean",
               "datetime": "timestamp", "date": "date"}
ARROW_TYPES = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string(), "bool": pa.bool_(),
               "datetime": pa.timestamp("us", tz="UTC"), "date": pa.date32()}
_ERRORS = (PySparkException, Py4JError)


def get_session(master: str = "local[*]") -> SparkSession:
    """The active SparkSession, or a new one on ``master`` (loopback-only and UI-less when local)."""
    active = SparkSession.getActiveSession()
    if active is not None:
        if active.sparkContext.master != master:
            log.warning("reusing the active Spark session on %s (asked for %s)",
                        active.sparkContext.master, master)
        return active
    builder = (SparkSession.builder.master(master).appName("kfp-ingest")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.caseSensitive", "true")
               .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
               .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
               .config("spark.ui.enabled", "false"))
    if master.startswith("local"):
        os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # cast UDF workers need this environment
        builder = (builder.config("spark.driver.host", "127.0.0.1")
                   .config("spark.driver.bindAddress", "127.0.0.1")
                   .config("spark.sql.shuffle.partitions", str(max(2, os.cpu_count() or 2))))
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def stop_session() -> None:
    """Stop the active session, if any."""
    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()


def spark_type(dt: Any) -> T.DataType:
    """The Spark type of a polars dtype (instance or class; as read from CSV / JSON lines)."""
    simple: dict[type[pl.DataType], T.DataType] = {
        pl.Int8: T.ByteType(), pl.Int16: T.ShortType(), pl.Int32: T.IntegerType(), pl.Int64: T.LongType(),
        pl.UInt8: T.ShortType(), pl.UInt16: T.IntegerType(), pl.UInt32: T.LongType(), pl.UInt64: T.LongType(),
        pl.Float32: T.FloatType(), pl.Float64: T.DoubleType(), pl.String: T.StringType(),
        pl.Null: T.StringType(), pl.Boolean: T.BooleanType(), pl.Date: T.DateType(),
        pl.Binary: T.BinaryType()}
    if isinstance(dt, pl.Datetime):
        return T.TimestampType() if dt.time_zone else T.TimestampNTZType()
    if isinstance(dt, pl.List):
        return T.ArrayType(spark_type(dt.inner))
    if isinstance(dt, pl.Struct):
        return T.StructType([T.StructField(f.name, spark_type(f.dtype)) for f in dt.fields])
    if isinstance(dt, pl.Decimal):
        return T.DecimalType(dt.precision or 38, dt.scale or 0)
    if dt.base_type() in simple:
        return simple[dt.base_type()]
    raise IngestError(f"polars dtype {dt} has no Spark equivalent")


def _path(uri: str) -> str:
    return "s3a://" + uri[len("s3://"):] if uri.startswith("s3://") else uri


def read(spark: SparkSession, table: Table, ordered: bool = False) -> DataFrame:
    """Read a resolved table; ``ordered`` adds hidden file / position columns.

    CSV float columns are read as text and parsed by the cast rule: Spark's CSV parser knows one spelling of
    NaN and infinity each, polars (whose schema this is) several (``inf``, ``-Infinity``, ``nan`` ...).
    """
    paths = [_path(f) for f in table.files]
    floats = [n for n, d in table.schema.items() if d.is_float()] if table.format == "csv" else []
    schema = T.StructType([T.StructField(n, T.StringType() if n in floats else spark_type(d))
                           for n, d in table.schema.items()])
    if table.format == "parquet":
        df = spark.read.parquet(*paths)
    elif table.format == "csv":
        df = spark.read.csv(paths, schema=schema, header=True, mode="FAILFAST", escape='"',
                            multiLine=table.multiline)
        df = df.withColumns({c: cast_column(c, "float64") for c in floats}) if floats else df
    else:
        df = spark.read.json(paths, schema=schema, mode="FAILFAST")
    if ordered:
        return df.withColumns({FILE: F.input_file_name(), ROW: F.monotonically_increasing_id()})
    return df


def cast_column(name: str, to: str) -> Column:
    """A column converted by the one cast rule (an Arrow UDF running it on each batch); null where a value does
    not convert."""
    # a scalar Arrow UDF by its type hints (pyspark's stubs still ask for the functionType it warns about)
    convert = F.arrow_udf(arrow_cast(None, to, ARROW_TYPES[to]), SPARK_TYPES[to])  # type: ignore[call-overload]
    return convert(F.col(name))


def _hidden(df: DataFrame) -> list[str]:
    return [c for c in (FILE, ROW) if c in df.columns]


def _cast(df: DataFrame, i: int, t: Cast, failures: dict[str, int]) -> DataFrame:
    exprs = {c: cast_column(c, to) for c, to in t.columns.items()}
    aggs = []
    for c, e in exprs.items():
        bad = F.col(c).isNotNull() & e.isNull()
        aggs += [F.sum(bad.cast("long")).alias(f"n:{c}"),
                 F.first(F.when(bad, F.col(c).cast("string")), ignorenulls=True).alias(f"ex:{c}")]
    row = df.agg(*aggs).first()
    values = row.asDict() if row else {}
    counts = {c: int(values.get(f"n:{c}") or 0) for c in t.columns}
    raise_cast_failures(i, t, counts, {c: values.get(f"ex:{c}") for c in t.columns})
    for c, n in counts.items():
        failures[c] = failures.get(c, 0) + n
    return df.withColumns(exprs)


def _dedupe(df: DataFrame, t: Dedupe) -> DataFrame:
    first = t.keep == "first"
    order = [F.col(c).asc_nulls_first() if first else F.col(c).desc_nulls_last() for c in t.order_by or []]
    order += [F.col(c).asc() if first else F.col(c).desc() for c in _hidden(df)]
    window = Window.partitionBy(*t.keys).orderBy(*(order or [F.lit(1)]))
    return df.withColumn("__rn", F.row_number().over(window)).filter("__rn = 1").drop("__rn")


def _agg(fn: str, column: str | None, name: str) -> Column:
    if column is None:
        return F.count(F.lit(1)).alias(name)
    col = F.col(column)
    exprs = {"sum": F.coalesce(F.sum(col), F.lit(0)), "mean": F.avg(col), "min": F.min(col),
             "max": F.max(col), "count": F.count(col), "n_unique": F.count_distinct(col)}
    return exprs[fn].cast("bigint").alias(name) if fn in ("count", "n_unique") else exprs[fn].alias(name)


def apply(df: DataFrame, i: int, t: Transform, tables: Mapping[int, DataFrame],
          failures: dict[str, int]) -> DataFrame:
    """One transform on a Spark DataFrame (``tables``: the joined tables, read)."""
    if isinstance(t, Select):
        return df.select(*t.columns, *_hidden(df))
    if isinstance(t, Rename):
        return df.withColumnsRenamed(t.mapping)
    if isinstance(t, Cast):
        return _cast(df, i, t, failures)
    if isinstance(t, Derive):
        return df.withColumn(t.name, F.expr(t.sql))
    if isinstance(t, Filter):
        return df.filter(F.expr(t.sql))
    if isinstance(t, Dedupe):
        return _dedupe(df, t)
    if isinstance(t, Join):
        right = tables[i]
        left = [c for c in df.columns if c not in (FILE, ROW)]
        right = right.withColumnsRenamed({c: f"{c}{JOIN_SUFFIX}" for c in right.columns
                                          if c not in t.on and c in left})
        extra = [c for c in right.columns if c not in t.on]
        return df.join(right, on=list(t.on), how=t.how).select(*left, *extra, *_hidden(df))
    assert isinstance(t, Aggregate)
    return df.groupBy(*t.by).agg(*(_agg(a.fn, a.column, a.name) for a in t.aggs))


def _observe(df: DataFrame, key: str | int, observed: dict[str | int, Observation]) -> DataFrame:
    """``df`` counting its rows into ``observed[key]`` when an action runs it."""
    observed[key] = Observation(f"ingest_rows_{key}".replace(" ", "_").replace("#", ""))
    return df.observe(observed[key], F.count(F.lit(1)).alias("rows"))


def count_files(spark: SparkSession, table: Table) -> dict[str, int]:
    """Rows Spark reads from each file of a table alone (names the file when a table's total is off)."""
    return {s.path: read(spark, dataclasses.replace(table, sources=(s,))).count() for s in table.sources}


def run(spark: SparkSession, source: Table, transforms: Sequence[Transform], tables: Mapping[int, Table],
        output_uri: str, settle: Settle) -> tuple[EngineRun, RowAccount]:
    """Execute the chain with Spark and write a Parquet folder at ``output_uri``; it appears only when the row
    account (``settle``) adds up."""
    master = spark.sparkContext.master or ""
    made = [s.path for table in (source, *tables.values()) for s in table.sources if s.path != s.uri]
    if made and not master.startswith("local"):
        raise IngestError(f"the spark engine on {master} cannot read {made[0]}: compressed, transcoded or cleaned "
                          "sources are made plain in the step's local scratch folder, which executors do not see; "
                          "use a local master, the duckdb or polars engine, or plain UTF-8 sources on shared storage")
    failures: dict[str, int] = {}
    observed: dict[str | int, Observation] = {}
    wanted = set(counted_stages(transforms))
    try:
        df = _observe(read(spark, source, ordered=any(isinstance(t, Dedupe) for t in transforms)), SOURCE,
                      observed)
        right = {i: _observe(read(spark, table), joined(i), observed) for i, table in tables.items()}
        for i, t in enumerate(transforms):
            try:
                df = apply(df, i, t, right, failures)
                df.schema  # noqa: B018 - resolves the plan so analysis errors name the transform
            except AnalysisException as err:
                raise TransformError(i, t.op, str(err).splitlines()[0]) from None
            if i in wanted:
                df = _observe(df, i, observed)
        df = df.drop(*_hidden(df))
        with atomic_target(output_uri) as tmp:
            df.write.mode("overwrite").parquet(_path(tmp))
            if is_local(tmp):  # Hadoop's local checksum files would stop plain readers of the folder
                for crc in glob.glob(os.path.join(local_path(tmp), ".*.crc")):
                    os.remove(crc)
            first_part = data_files(tmp, "parquet")[0][0]
            rows = {k: int(o.get["rows"]) for k, o in observed.items()}
            result = EngineRun(parsed={k: n for k, n in rows.items() if isinstance(k, str)},
                               stage_rows={k: n for k, n in rows.items() if isinstance(k, int)},
                               rows_out=parquet_rows(tmp), cast_failures=failures,
                               columns={k: str(v) for k, v in pl.scan_parquet(first_part).collect_schema().items()})
            account = settle(result)
    except _ERRORS as err:
        raise diagnose(err, [source, *tables.values()]) from None
    return result, account
