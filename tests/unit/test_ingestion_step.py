"""The ingestion step the wrapper calls: config JSON with errors naming the field, the data_version merge, the
result with its metadata."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from components._core.config import ConfigError
from components.ingestion.step import ingest_step, parse_config


@pytest.mark.parametrize(("config", "message"), [
    ("{not json", r"config is not valid JSON"),
    ("[1, 2]", r"config must be a JSON object, got list"),
    ('{"engine": "dask"}', r"IngestConfig\.engine"),
    ('{"encoding": "klingon"}', r"IngestConfig\.encoding: .*unknown encoding 'klingon'"),
    ('{"transforms": [{"op": "cast", "columns": {"a": "int32"}}]}', r"IngestConfig\.transforms\.0\.cast\.columns\.a"),
    ('{"transforms": [{"op": "join", "uri": "u", "on": ["a"], "encoding": "nope"}]}', r"join\.encoding"),
    ('{"data_version": "2026-01-01"}', r"data_version '2026-01-01' in config differs from the data_version "
                                       r"parameter 'v2'"),
])
def test_bad_config_names_the_field(config: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(config, "v2")


def test_data_version_comes_from_the_parameter() -> None:
    assert parse_config("", "v2").data_version == "v2"
    assert parse_config('{"data_version": "v2", "engine": "polars"}', "v2").engine == "polars"
    assert parse_config({"encoding": "latin-1"}, "v3").encoding == "latin-1"


@pytest.mark.parametrize("engine", ["duckdb", "polars"])
def test_step_ingests_and_reports(tmp_path: Path, engine: str) -> None:
    (tmp_path / "in.csv").write_bytes("id,city\r\n1,Köln\r\n\r\n2,Zürich\r\n".encode("cp1252"))
    config = json.dumps({"engine": engine, "encoding": "cp1252",
                         "transforms": [{"op": "filter", "sql": "id > 1"}]})
    result = ingest_step(str(tmp_path / "in.csv"), str(tmp_path / "dataset"), config=config, data_version="d1")
    assert pl.read_parquet(tmp_path / "dataset").to_dicts() == [{"id": 2, "city": "Zürich"}]
    meta = result.to_metadata()
    assert (meta["rows_read"], meta["rows_in"], meta["rows_out"], meta["blank_lines_skipped"]) == (2, 2, 1, 1)
    assert meta["data_version"] == "d1" and meta["engine"] == engine
    account = json.loads(meta["row_account"])
    assert account["transforms"] == [{"index": 0, "op": "filter", "rows_in": 2, "rows_out": 1, "counted": True}]
    assert account["converted"] == {str(tmp_path / "in.csv"): ["cp1252", "blank lines"]}
