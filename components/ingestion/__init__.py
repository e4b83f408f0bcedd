"""Ingestion: read CSV / Parquet / JSON lines, apply declared transforms, write Parquet (duckdb, polars or Spark)."""

from components.ingestion.config import IngestConfig
from components.ingestion.ingest import IngestResult, run_ingest
from components.ingestion.transforms import CastError, IngestError, Transform, TransformError

__all__ = [
    "CastError", "IngestConfig", "IngestError", "IngestResult", "Transform", "TransformError", "run_ingest",
]
