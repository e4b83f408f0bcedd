"""The ingestion step, the one entry point of the KFP wrapper: parse the config JSON (errors name the field),
merge the ``data_version`` parameter into it, run the ingestion; the result's ``to_metadata()`` is what the
wrapper puts on its dataset."""

from __future__ import annotations

import json
from typing import Any

from components._core.config import ConfigError
from components.ingestion.config import IngestConfig
from components.ingestion.ingest import IngestResult, run_ingest


def parse_config(config: str | dict[str, Any], data_version: str) -> IngestConfig:
    """The step's config: ``config`` (JSON text or a dict; empty means defaults) with ``data_version`` from the
    step's parameter. A ``data_version`` in ``config`` that differs from the parameter is an error."""
    if isinstance(config, str):
        try:
            data = json.loads(config) if config.strip() else {}
        except json.JSONDecodeError as err:
            raise ConfigError(f"invalid IngestConfig: config is not valid JSON ({err})") from None
    else:
        data = dict(config)
    if not isinstance(data, dict):
        raise ConfigError(f"invalid IngestConfig: config must be a JSON object, got {type(data).__name__}")
    if data.get("data_version", data_version) != data_version:
        raise ConfigError(f"invalid IngestConfig: data_version {data['data_version']!r} in config differs from the "
                          f"data_version parameter {data_version!r}; give it once")
    return IngestConfig.parse({**data, "data_version": data_version})


def ingest_step(source_uri: str, dataset_path: str, *, config: str | dict[str, Any] = "{}", data_version: str,
                spark: Any = None) -> IngestResult:
    """Ingest ``source_uri`` into the dataset at ``dataset_path`` (one Parquet file; a folder with Spark)."""
    return run_ingest(source_uri, dataset_path, parse_config(config, data_version), spark=spark)
