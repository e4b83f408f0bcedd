"""The ingestion component's configuration."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from components._core.artifacts import TableFormat
from components._core.config import StrictConfig
from components.ingestion.transforms import Encoding, Transform


class IngestConfig(StrictConfig):
    """Read a table (file or folder), apply declared transforms in order, write Parquet."""

    format: TableFormat = Field("auto", description="source format; auto infers it from file suffixes "
                                                   "(gzip / zstd files by suffix or content)")
    encoding: Encoding = Field("utf-8", description="text encoding of CSV / JSON-lines sources, e.g. utf-8, "
                                                    "latin-1, cp1252, utf-16 (a byte-order mark overrides it); "
                                                    "other encodings are transcoded to UTF-8 once for every engine")
    transforms: list[Transform] = Field(default_factory=list, max_length=200,
                                        description="transforms applied in order")
    engine: Literal["duckdb", "polars", "spark"] = Field(
        "duckdb", description="duckdb or polars in process (the same rows and dtypes; derive / filter SQL in "
                              "the engine's dialect), or pyspark")
    spark_master: str = Field("local[*]", min_length=1, max_length=500,
                              description="Spark master URL (engine=spark), e.g. local[*] or k8s://...")
    data_version: str = Field(
        min_length=1, max_length=200,
        description="version of the source data (e.g. a snapshot date); recorded in the output metadata and "
                    "part of the step's inputs, so a KFP cache hit never serves output built from older data")
