"""The ingest wrapper's ``python_func`` on temporary artifacts, with every engine it offers, on files written the
way users write them: Python's gzip module, the zstd tool (or pyarrow's codec), pandas in UTF-16, CRLF line
endings, a quoted field holding a newline, a header-only file."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from kfp import dsl

from components._core.artifacts import read_table
from components._core.config import ConfigError
from components._kfp import ingest
from tests.component.artifacts import artifact

PEOPLE = pd.DataFrame({"id": [1, 2, 3], "name": ["Ann", "Zoë, Jr.", 'say "hi"\nbye'], "score": [1.5, None, 3.0]})
ENGINES = ["duckdb", "polars", pytest.param("spark", marks=pytest.mark.slow)]


def zstd(path: Path, data: bytes) -> None:
    if shutil.which("zstd"):
        subprocess.run(["zstd", "-q", "-f", "-o", str(path)], input=data, check=True)
    else:
        with pa.CompressedOutputStream(str(path), "zstd") as fh:
            fh.write(data)


WRITERS: dict[str, Callable[[Path], None]] = {
    "people.csv.gz": lambda p: p.write_bytes(gzip.compress(PEOPLE.to_csv(index=False).encode())),
    "people.csv": lambda p: p.write_bytes(gzip.compress(PEOPLE.to_csv(index=False).encode())),  # gzip, plain name
    "people.jsonl.zst": lambda p: zstd(p, PEOPLE.to_json(orient="records", lines=True).encode()),
    "people_utf16.csv": lambda p: PEOPLE.to_csv(p, index=False, encoding="utf-16"),
    "people_crlf.csv": lambda p: PEOPLE.to_csv(p, index=False, lineterminator="\r\n"),
    "header_only.csv": lambda p: PEOPLE.head(0).to_csv(p, index=False),
}


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "spark":  # the integration tier's session: fails instead of skipping in CI
        from tests.integration.test_ingestion_spark import spark_session

        spark_session()
    yield request.param


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
@pytest.mark.parametrize("name", list(WRITERS))
def test_python_func_reads_files_made_by_other_tools(tmp_path: Path, engine: str, name: str) -> None:
    WRITERS[name](tmp_path / name)
    dataset = artifact(dsl.Dataset, tmp_path / "dataset")
    config = json.dumps({"engine": engine, "transforms": [{"op": "cast", "columns": {"score": "float64"}}]})
    rows = ingest.python_func(dataset=dataset, source_uri=str(tmp_path / name), config=config, data_version="v7")
    expected = [] if name == "header_only.csv" else PEOPLE.to_dict("records")
    got = read_table(dataset.path).to_dicts()
    assert rows == len(expected) == len(got) and dataset.metadata["rows_out"] == rows
    for want, have in zip(expected, got, strict=True):
        assert have["id"] == want["id"] and have["name"] == want["name"]
        assert have["score"] == (None if pd.isna(want["score"]) else want["score"])
    meta: dict[str, Any] = dataset.metadata
    assert meta["engine"] == engine and meta["data_version"] == "v7" and meta["rows_read"] == rows
    assert json.loads(meta["row_account"])["files"] == {str(tmp_path / name): rows}


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_python_func_on_the_default_demo_source(tmp_path: Path, engine: str) -> None:
    dataset = artifact(dsl.Dataset, tmp_path / "dataset")
    rows = ingest.python_func(dataset=dataset, source_uri="demo://events?rows=300&bad_share=0.1&seed=2",
                              config=json.dumps({"engine": engine}))
    assert rows == 300 == read_table(dataset.path).height
    assert dataset.metadata["rows_read"] == 300 and dataset.metadata["data_version"] == "v1"


def test_python_func_names_the_bad_config_field(tmp_path: Path) -> None:
    dataset = artifact(dsl.Dataset, tmp_path / "dataset")
    with pytest.raises(ConfigError, match=r"IngestConfig\.transforms\.0\.filter\.sql"):
        ingest.python_func(dataset=dataset, config='{"transforms": [{"op": "filter", "sql": "a >"}]}')
    with pytest.raises(ConfigError, match="not valid JSON"):
        ingest.python_func(dataset=dataset, config="{engine: duckdb}")
    assert not (tmp_path / "dataset").exists()
