"""The validate_data wrapper's ``python_func`` on temporary artifacts: declared contract, contract inferred from a
reference, no contract at all, a bad contract, and a threshold failure that keeps its quarantine."""

import json
from pathlib import Path

import polars as pl
import pytest
from kfp import dsl

from components._core.artifacts import read_json
from components._core.config import ConfigError
from components._kfp import validate_data
from components.data.contracts import demo_events_contract
from components.data.events import EventsConfig, generate_events
from components.validation.run import QuarantineThresholdError
from tests.component.artifacts import artifact, outputs


def _outs(tmp_path: Path) -> dict[str, dsl.Artifact]:
    return outputs(tmp_path / "out", valid=dsl.Dataset, quarantine=dsl.Dataset, stats=dsl.Artifact,
                   report=dsl.Markdown, metrics=dsl.Metrics)


def _events(path: Path, **cfg: object) -> dsl.Artifact:
    """Demo events written by pandas as CSV (ISO timestamps as text), as an input artifact."""
    generate_events(EventsConfig.parse(cfg)).to_pandas().to_csv(path, index=False)
    return artifact(dsl.Dataset, path)


def test_declared_contract(tmp_path: Path) -> None:
    data = _events(tmp_path / "in.csv", rows=600, bad_share=0.03, seed=4)
    outs = _outs(tmp_path)
    rows_valid, rows_bad = validate_data.python_func(data=data, contract="demo_events", **outs)
    assert rows_valid + rows_bad == 600 and rows_bad == 18
    assert outs["valid"].metadata["contract_source"] == "declared"
    assert outs["quarantine"].metadata["rows_quarantined"] == rows_bad
    assert outs["metrics"].metadata["rows_valid"] == rows_valid
    assert "contract_source" not in outs["metrics"].metadata  # metrics hold numbers only
    assert pl.read_parquet(outs["quarantine"].path).height == rows_bad


def test_contract_inferred_from_a_reference_month(tmp_path: Path) -> None:
    january = _events(tmp_path / "january.csv", rows=2000, days=31, seed=1)
    february_df = generate_events(EventsConfig(rows=2000, days=28, seed=2, start="2026-02-01")).to_pandas()
    february_df.loc[7, "country"] = "XX"
    february_df.loc[9, "event_timestamp"] = "not a time"
    february_df.to_csv(tmp_path / "february.csv", index=False)
    outs = _outs(tmp_path)
    config = json.dumps({"infer": {"unique_keys": ["entity_id", "event_timestamp"]}})
    counts = validate_data.python_func(data=artifact(dsl.Dataset, tmp_path / "february.csv"), reference=january,
                                       config=config, **outs)
    assert counts == (1998, 2)
    q = pl.read_parquet(outs["quarantine"].path)
    assert dict(zip(q["_row"], q["_reasons"], strict=True)) == {
        7: "country: 'XX' not in allowed", 9: "event_timestamp: 'not a time' is not a datetime"}
    assert pl.read_parquet(outs["valid"].path).schema["event_timestamp"] == pl.Datetime("us", "UTC")
    assert outs["valid"].metadata["contract_source"] == "inferred"
    contract = read_json(outs["stats"].path)["contract"]
    assert contract["unique_keys"] == ["entity_id", "event_timestamp"]
    assert "Contract: inferred from the reference" in Path(outs["report"].path).read_text()


def test_no_contract_and_no_reference_passes_every_row_and_says_so(tmp_path: Path) -> None:
    data = _events(tmp_path / "in.csv", rows=300, bad_share=0.1, seed=2)
    outs = _outs(tmp_path)
    assert validate_data.python_func(data=data, **outs) == (300, 0)  # the component's default contract is ""
    assert outs["valid"].metadata["contract_source"] == "none"
    assert outs["valid"].metadata["row_rules_applied"] is False
    assert "**UNCHECKED**" in Path(outs["report"].path).read_text()
    assert pl.read_parquet(outs["valid"].path).height == 300


@pytest.mark.parametrize(("contract", "field"), [
    ('{"columns": [{"name": "amount", "dtype": "money"}]}', r"Contract\.columns\.0\.dtype"),
    ('{"columns": [{"name": "amount", "dtype": "float", "min": "zero"}]}', "min of float column 'amount'"),
    ('{"columns": [{"name": "amount", "dtype": "float"}], "keys": []}', r"Contract\.keys"),
    ('{"columns": [', "not valid JSON"),
])
def test_a_bad_contract_names_the_field_and_writes_nothing(tmp_path: Path, contract: str, field: str) -> None:
    data = _events(tmp_path / "in.csv", rows=50)
    with pytest.raises(ConfigError, match=field):
        validate_data.python_func(data=data, contract=contract, **_outs(tmp_path))
    assert not (tmp_path / "out").exists()


def test_a_bad_config_names_the_field(tmp_path: Path) -> None:
    data = _events(tmp_path / "in.csv", rows=50)
    with pytest.raises(ConfigError, match=r"ValidationConfig\.infer\.numeric_ranges"):
        validate_data.python_func(data=data, reference=data, config='{"infer": {"numeric_ranges": "wide"}}',
                                  **_outs(tmp_path))
    with pytest.raises(ConfigError, match=r"ValidationConfig\.max_quarantine_share: set it with the step"):
        validate_data.python_func(data=data, config='{"max_quarantine_share": 0.5}', **_outs(tmp_path))


def test_threshold_failure_keeps_the_quarantine(tmp_path: Path) -> None:
    data = _events(tmp_path / "in.csv", rows=500, bad_share=0.2, seed=1)
    outs = _outs(tmp_path)
    inline = demo_events_contract().to_json()
    with pytest.raises(QuarantineThresholdError, match=r"exceeds max_quarantine_share 0\.0500"):
        validate_data.python_func(data=data, contract=inline, max_quarantine_share=0.05, **outs)
    q = pl.read_parquet(outs["quarantine"].path)
    assert q.height == read_json(outs["stats"].path)["summary"]["rows_quarantined"] > 50
    assert q["_reasons"].str.len_chars().min() > 0  # type: ignore[operator]
    assert "**FAIL**" in Path(outs["report"].path).read_text()
