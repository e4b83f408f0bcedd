"""``run_ingest``: resolve the source, check the transform chain against its columns, run an engine."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from components.data.sources import is_demo, write_demo_source
from components.ingestion import polars_engine
from components.ingestion.config import IngestConfig
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

    def to_metadata(self) -> dict[str, Any]:
        """Flat JSON-able values (dicts are sorted JSON strings)."""
        return {
            "rows_in": self.rows_in, "rows_out": self.rows_out, "engine": self.engine,
            "seconds": round(self.seconds, 3), "source_files": self.source_files,
            "n_columns": len(self.columns), "columns": json.dumps(self.columns, sort_keys=True),
            "data_version": self.data_version, "cast_failures_total": sum(self.cast_failures.values()),
            "cast_failures": json.dumps(self.cast_failures, sort_keys=True),
        }


def run_ingest(source_uri: str, output_uri: str, config: IngestConfig | dict[str, Any] | str,
               *, spark: Any = None) -> IngestResult:
    """Read ``source_uri`` (file or folder; ``demo://`` names an embedded data set), apply
    ``config.transforms``, write Parquet at ``output_uri``.

    duckdb and polars write one Parquet file, Spark a Parquet folder; each appears only when complete.
    ``spark`` may pass an existing SparkSession (tests share one). Raises ValueErrors: ``ArtifactError``
    (missing source, empty folder, malformed file), ``TransformError`` / ``CastError`` (bad chain or value),
    ``ConfigError``.
    """
    cfg = IngestConfig.parse(config)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="demo-source-") as staging:
        if is_demo(source_uri):  # embedded data set, written as CSV so it takes the same parsing path
            source_uri = write_demo_source(source_uri, staging)
        return _ingest(source_uri, output_uri, cfg, spark, start)


def _ingest(source_uri: str, output_uri: str, cfg: IngestConfig, spark: Any, start: float) -> IngestResult:
    source = polars_engine.open_table(source_uri, cfg.format)
    tables = {i: polars_engine.open_table(t.uri, t.format)
              for i, t in enumerate(cfg.transforms) if isinstance(t, Join)}
    check_chain(cfg.transforms, source.schema.names(), lambda i, _: tables[i].schema.names())
    if cfg.engine == "spark":
        from components.ingestion import spark_engine

        session = spark or spark_engine.get_session(cfg.spark_master)
        run = spark_engine.run(session, source, cfg.transforms, tables, output_uri)
    elif cfg.engine == "duckdb":
        from components.ingestion import duckdb_engine

        run = duckdb_engine.run(source, cfg.transforms, tables, output_uri)
    else:
        run = polars_engine.run(source, cfg.transforms, tables, output_uri)
    return IngestResult(rows_in=run.rows_in, rows_out=run.rows_out, engine=run.engine or cfg.engine,
                        seconds=time.perf_counter() - start, source_files=len(source.files),
                        columns=run.columns, data_version=cfg.data_version, cast_failures=run.cast_failures)
