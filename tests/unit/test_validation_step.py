"""The validation step: the contract parameter (built-in, inline JSON, file), config parsing, and the summary
the wrapper copies onto its artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components._core.config import ConfigError
from components.data.contracts import breast_cancer_contract, demo_events_contract
from components.data.events import EventsConfig, generate_events
from components.validation.contract import ContractError
from components.validation.step import load_contract, step_config, validate_step


def test_contract_parameter_forms(tmp_path: Path) -> None:
    demo = demo_events_contract()
    (tmp_path / "c.json").write_text(demo.to_json())
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(demo.model_dump(mode="json")))
    assert load_contract("") is None and load_contract("  ") is None
    assert load_contract("demo_events") == demo and load_contract("breast_cancer") == breast_cancer_contract()
    assert load_contract(demo.to_json()) == demo
    assert load_contract(str(tmp_path / "c.json")) == demo
    assert load_contract(f"file://{tmp_path / 'c.yaml'}") == demo


def test_contract_parameter_errors(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"'demo_event' is neither a built-in \(breast_cancer, demo_events\)"):
        load_contract("demo_event")
    (tmp_path / "bad.yaml").write_text("columns: [\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml is not valid JSON/YAML"):
        load_contract(str(tmp_path / "bad.yaml"))
    (tmp_path / "wrong.yaml").write_text("columns:\n  - name: a\n    dtype: int\n    nulable: true\n")
    with pytest.raises(ConfigError, match=r"Contract\.columns\.0\.nulable"):
        load_contract(str(tmp_path / "wrong.yaml"))


def test_step_config_merges_parameters_and_config() -> None:
    cfg = step_config("", 0.2, '{"allow_empty": true, "infer": {"numeric_ranges": "sign"}}')
    assert (cfg.contract, cfg.max_quarantine_share, cfg.allow_empty, cfg.infer.numeric_ranges) == (
        None, 0.2, True, "sign")
    assert step_config("demo_events", 0.05, {}).contract == demo_events_contract()
    with pytest.raises(ConfigError, match=r"ValidationConfig\.contract: set it with the step's contract parameter"):
        step_config("", 0.05, {"contract": demo_events_contract().model_dump()})
    with pytest.raises(ConfigError, match=r"ValidationConfig\.max_quarantine_share"):
        step_config("", 1.5, "{}")
    with pytest.raises(ConfigError, match="infer applies only when the contract is inferred"):
        step_config("demo_events", 0.05, {"infer": {"unique_keys": ["entity_id"]}})


def test_validate_step_summary_metadata_and_metrics(tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    generate_events(EventsConfig(rows=400, bad_share=0.05, seed=9)).write_parquet(src)
    uris = {k: str(tmp_path / k) for k in ("valid_uri", "quarantine_uri", "stats_uri", "report_uri")}
    summary = validate_step(str(src), **uris, contract="demo_events", max_quarantine_share=0.1)
    meta = summary.to_metadata()
    assert meta["contract_source"] == "declared" and meta["rows_in"] == 400
    assert summary.metrics() == {k: float(v) for k, v in meta.items()
                                 if not isinstance(v, bool | str)}
    assert "contract_source" not in summary.metrics() and "passed" not in summary.metrics()
