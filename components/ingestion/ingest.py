"""``run_ingest``: resolve the sources, check the transform chain against their columns, run an engine, settle
the row account."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from components.data.sources import is_demo, write_demo_source
from components.ingestion import duckdb_engine, polars_engine
from components.ingestion.account import EngineRun, RowAccount, settle
from components.ingestion.config import IngestConfig
from components.ingestion.sources import Table, open_table
from components.ingestion.transforms import Join, check_chain


@dataclass(frozen=True)
class IngestResult:
    """What one ingestion did; ``to_metadata`` gives flat values for a KFP artifact's metadata."""

    rows_in: int
    rows_out: int
    engine: str
    seconds: float
    source_files: int
    columns: dict[str, str]
    data_version: str
    cast_failures: dict[str, int] = field(default_factory=dict)
    account: RowAccount | None = None

    def to_metadata(self) -> dict[str, Any]:
        """Flat JSON-able values (dicts are sorted JSON strings), the row account included."""
        return {
            "rows_in": self.rows_in, "rows_out": self.rows_out, "engine": self.engine,
            "seconds": round(self.seconds, 3), "source_files": self.source_files,
            "n_columns": len(self.columns), "columns": json.dumps(self.columns, sort_keys=True),
            "data_version": self.data_version, "cast_failures_total": sum(self.cast_failures.values()),
            "cast_failures": json.dumps(self.cast_failures, sort_keys=True),
            **(self.account.to_metadata() if self.account else {}),
        }


def run_ingest(source_uri: str, output_uri: str, config: IngestConfig | dict[str, Any] | str,
               *, spark: Any = None, scratch: str | None = None) -> IngestResult:
    """Read ``source_uri`` (file or folder; ``demo://`` names an embedded data set), apply
    ``config.transforms``, write Parquet at ``output_uri``.

    duckdb and polars write one Parquet file, Spark a Parquet folder; each appears only when complete.
    ``spark`` may pass an existing SparkSession (tests share one); ``scratch`` is a folder for plain copies of
    compressed or transcoded sources (default: a temporary folder, removed afterwards). Raises ValueErrors:
    ``ArtifactError`` (missing source, empty folder, malformed file), ``TransformError`` / ``CastError`` (bad
    chain or value), ``RowAccountError`` (rows the transforms do not explain), ``ConfigError``.
    """
    cfg = IngestConfig.parse(config)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ingest-", dir=scratch) as work:
        if is_demo(source_uri):  # embedded data set, written as CSV so it takes the same parsing path
            source_uri = write_demo_source(source_uri, work)
        return _ingest(source_uri, output_uri, cfg, spark, work, start)


def _ingest(source_uri: str, output_uri: str, cfg: IngestConfig, spark: Any, scratch: str,
            start: float) -> IngestResult:
    source = open_table(source_uri, cfg.format, scratch=scratch, encoding=cfg.encoding)
    tables = {i: open_table(t.uri, t.format, scratch=scratch, encoding=t.encoding or cfg.encoding)
              for i, t in enumerate(cfg.transforms) if isinstance(t, Join)}
    check_chain(cfg.transforms, source.schema.names(), lambda i, _: tables[i].schema.names())
    counters: dict[str, Callable[[Table], Mapping[str, int]]] = {
        "polars": polars_engine.count_files, "duckdb": duckdb_engine.count_files}

    def account(run: EngineRun) -> RowAccount:  # called by the engine before its output is committed
        engine = run.engine or cfg.engine
        return settle(source, tables, cfg.transforms, run, engine, counters[engine])

    if cfg.engine == "spark":
        from components.ingestion import spark_engine  # pyspark only where it is asked for

        session = spark or spark_engine.get_session(cfg.spark_master)
        counters["spark"] = partial(spark_engine.count_files, session)
        run, rows = spark_engine.run(session, source, cfg.transforms, tables, output_uri, account)
    elif cfg.engine == "duckdb":
        run, rows = duckdb_engine.run(source, cfg.transforms, tables, output_uri, account)
    else:
        run, rows = polars_engine.run(source, cfg.transforms, tables, output_uri, account)
    return IngestResult(rows_in=run.rows_in, rows_out=run.rows_out, engine=run.engine or cfg.engine,
                        seconds=time.perf_counter() - start, source_files=len(source.sources),
                        columns=run.columns, data_version=cfg.data_version, cast_failures=run.cast_failures,
                        account=rows)
