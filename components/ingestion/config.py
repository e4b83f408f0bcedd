"""The ingestion component's configuration."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from components._core.artifacts import TableFormat
from components._core.config import StrictConfig
from components.ingestion.transforms import Transform


class IngestConfig(StrictConfig):
    """Read a table (file or folder), apply declared transforms in order, write Parquet."""

    format: TableFormat = Field("auto", description="source format; auto infers it from file suffixes")
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
