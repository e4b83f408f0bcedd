"""Wrappers: each component's ``python_func`` called on temporary artifacts, as KFP's executor would."""

import json
from pathlib import Path

import polars as pl
import pytest
from kfp import dsl

from components._kfp import ingest, validate_data
from components.validation.run import QuarantineThresholdError


def artifact(cls: type, path: Path) -> dsl.Artifact:
    return cls(name=path.name, uri=str(path), metadata={})


def test_ingest_then_validate_on_temporary_artifacts(tmp_path: Path) -> None:
    raw = artifact(dsl.Dataset, tmp_path / "raw")
    config = json.dumps({"transforms": [{"op": "derive", "name": "amount_per_item", "sql": "amount / n_items"}]})
    rows = ingest.python_func(dataset=raw, source_uri="demo://events?rows=800&bad_share=0.05&seed=3",
                              config=config, data_version="t1")
    assert rows == 800 and raw.metadata["rows_out"] == 800 and raw.metadata["data_version"] == "t1"
    assert "amount_per_item" in pl.read_parquet(raw.path).columns

    outs = {n: artifact(c, tmp_path / n) for n, c in [("valid", dsl.Dataset), ("quarantine", dsl.Dataset),
                                                       ("stats", dsl.Artifact), ("report", dsl.Markdown),
                                                       ("metrics", dsl.Metrics)]}
    valid_rows, bad_rows = validate_data.python_func(data=raw, contract="demo_events", max_quarantine_share=0.1,
                                                     **outs)
    assert valid_rows + bad_rows == 800 and 20 <= bad_rows <= 60
    assert pl.read_parquet(outs["valid"].path).height == valid_rows
    assert outs["metrics"].metadata["rows_quarantined"] == bad_rows
    assert outs["valid"].metadata["rows_in"] == 800
    assert "quarantine" in Path(outs["report"].path).read_text().lower()


def test_validate_fails_above_the_threshold_but_keeps_the_quarantine(tmp_path: Path) -> None:
    raw = artifact(dsl.Dataset, tmp_path / "raw")
    ingest.python_func(dataset=raw, source_uri="demo://events?rows=500&bad_share=0.2&seed=1")
    outs = {n: artifact(c, tmp_path / n) for n, c in [("valid", dsl.Dataset), ("quarantine", dsl.Dataset),
                                                       ("stats", dsl.Artifact), ("report", dsl.Markdown),
                                                       ("metrics", dsl.Metrics)]}
    with pytest.raises(QuarantineThresholdError, match="exceeds"):
        validate_data.python_func(data=raw, contract="demo_events", max_quarantine_share=0.05, **outs)
    assert pl.read_parquet(outs["quarantine"].path).height > 50


def test_validate_infers_a_contract_from_a_reference(tmp_path: Path) -> None:
    ref, new = artifact(dsl.Dataset, tmp_path / "ref"), artifact(dsl.Dataset, tmp_path / "new")
    ingest.python_func(dataset=ref, source_uri="demo://breast_cancer")
    ingest.python_func(dataset=new, source_uri="demo://breast_cancer")
    outs = {n: artifact(c, tmp_path / n) for n, c in [("valid", dsl.Dataset), ("quarantine", dsl.Dataset),
                                                       ("stats", dsl.Artifact), ("report", dsl.Markdown),
                                                       ("metrics", dsl.Metrics)]}
    assert validate_data.python_func(data=new, contract="", reference=ref, **outs) == (569, 0)
