"""KFP wrapper of the ingestion component."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components._core.images import image


@dsl.component(base_image=image("spark"), install_kfp_package=False)
def ingest(
    dataset: Output[Dataset],
    source_uri: str = "demo://events?rows=5000&bad_share=0.02&seed=7",
    config: str = "{}",
    data_version: str = "v1",
) -> int:
    """Read CSV, Parquet or JSON lines (file or folder; local, gs://, s3:// or demo://), apply the declared
    transforms with duckdb (default), polars or pyspark and write a Parquet dataset; returns the rows written."""
    from components.ingestion.step import ingest_step

    result = ingest_step(source_uri, dataset.path, config=config, data_version=data_version)
    dataset.metadata.update(result.to_metadata())
    return result.rows_out
