"""The training pipeline, whole, under kfp.local through the ``catalog`` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import polars as pl
import pytest

from catalog.cli import main
from components.serving.canary.local import LocalServing
from components.serving.router import VERSION_HEADER
from components.serving.target import DeployConfig
from tests.local.params import QUICK

pytestmark = pytest.mark.slow
WORSE_TUNING = json.dumps({
    "objective": {"type": "maximize", "objectiveMetricName": "val_auc"},
    "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "1"}]},
    "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "1e-7", "max": "2e-7"}}],
    "parallelTrialCount": 1, "maxTrialCount": 1, "maxFailedTrialCount": 1})
WORSE_TRAINER = json.dumps({"label_column": "label", "hidden_sizes": [2], "max_epochs": 1, "seed": 3})
BLESS_ANYTHING = json.dumps({"thresholds": {"min_auc": None, "max_log_loss": None, "max_calibration_error": None},
                             "comparison": {"tolerance": 1.0}})


@pytest.fixture(autouse=True)
def serving_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Deployments of these runs live under the test's folder and are stopped afterwards."""
    monkeypatch.setenv("CATALOG_SERVING_HOME", str(tmp_path / "serving"))
    yield LocalServing(DeployConfig.parse({"local": {"home": str(tmp_path / "serving")}}))
    LocalServing(DeployConfig.parse({"local": {"home": str(tmp_path / "serving")}})).stop()


def served_versions(service: LocalServing, n: int = 10) -> set[str]:
    row = {"amount": 10.0, "n_items": 2, "session_minutes": 3.0, "account_age_days": 100, "country": "DE",
           "channel": "web", "device": "mobile"}
    url = f"{service.endpoint()}/v1/models/catalog-model:predict"
    return {httpx.post(url, json={"instances": [row]}).headers[VERSION_HEADER] for _ in range(n)}


def run(tmp_path: Path, *params: str) -> tuple[int, dict]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    summary = tmp_path / "summary.json"
    args = ["run", "training", "--root", str(tmp_path / "runs"), "--summary", str(summary)]
    for p in params:
        args += ["-p", p]
    code = main(args)
    return code, json.loads(summary.read_text())


def test_training_pipeline_runs_whole_on_defaults(tmp_path: Path, serving_home: LocalServing) -> None:
    code, summary = run(tmp_path)
    assert code == 0 and summary["status"] == "SUCCEEDED", summary["error"]
    tasks = {t["name"]: t for t in summary["tasks"]}
    assert set(tasks) == {"ingest", "validate-data", "feature-apply", "feature-materialize", "feature-training-set",
                          "feature-online-check", "tune", "train", "serving-champion", "evaluate", "deploy"}
    assert all(t["status"] == "SUCCEEDED" and t["seconds"] > 0 for t in tasks.values())
    rows = tasks["ingest"]["outputs"]["Output"]
    valid = pl.read_parquet(tasks["validate-data"]["outputs"]["valid"])
    quarantine = pl.read_parquet(tasks["validate-data"]["outputs"]["quarantine"])
    assert rows == 5000 and valid.height + quarantine.height == rows
    assert 0 < quarantine.height <= 0.05 * rows  # the demo injects 2 % bad rows
    assert quarantine["_reasons"].str.len_chars().min() > 0
    assert "PASS" in Path(tasks["validate-data"]["outputs"]["report"]).read_text()
    assert tasks["feature-materialize"]["outputs"]["Output"] == 1000  # 500 entities x 2 feature views
    training_set = pl.read_parquet(tasks["feature-training-set"]["outputs"]["training_set"])
    assert training_set.height == valid.height  # every label row kept
    assert {"amount", "country", "account_age_days", "label"} <= set(training_set.columns)
    assert tasks["feature-online-check"]["outputs"]["Output"] == 1.0  # every sampled entity has online values
    model = Path(tasks["train"]["outputs"]["model"])
    assert {"model.safetensors", "model_card.json"} <= {p.name for p in model.iterdir()}
    card = json.loads((model / "model_card.json").read_text())
    assert card["metrics"]["test_auc"] == tasks["train"]["outputs"]["Output"] > 0.6  # learns the demo's signal
    trials = pl.read_parquet(tasks["tune"]["outputs"]["trials"])
    assert trials.height == 3 and trials["state"].is_in(["Succeeded", "EarlyStopped"]).all()
    best = tasks["tune"]["outputs"]["best_trainer_config"]
    assert best["lr"] in trials["params_lr"].to_list()  # training consumed the tuner's best parameters
    assert card["trainer_config"]["lr"] == best["lr"]
    # the first deployment: blessed on thresholds alone, promoted, and still serving after the run
    assert tasks["serving-champion"]["outputs"]["Output"] == "" and tasks["evaluate"]["outputs"]["Output"] is True
    assert tasks["deploy"]["outputs"]["promoted"] is True
    champion = card["weights_sha256"][:12]
    assert served_versions(serving_home) == {champion}
    assert card["data_version"] == "v1" and card["training_set_sha256"]

    # a second run with a worse candidate that a permissive gate lets through: the canary rolls it back
    stable = serving_home.stable()
    assert stable is not None and stable.version == champion
    code, second = run(tmp_path / "second", f"tuning_spec={WORSE_TUNING}", f"trainer_config={WORSE_TRAINER}",
                       f"evaluation_config={BLESS_ANYTHING}", "data_version=v2")
    assert code == 0, second["error"]
    tasks = {t["name"]: t for t in second["tasks"]}
    assert tasks["serving-champion"]["outputs"]["Output"] == stable.model_uri
    assert tasks["evaluate"]["outputs"]["Output"] is True  # blessed by this permissive gate ...
    record = json.loads(Path(tasks["deploy"]["outputs"]["record"]).read_text())
    assert tasks["deploy"]["outputs"]["promoted"] is False and record["decision"] == "rolled_back"  # ... not live
    assert "comparison: candidate auc" in record["reasons"][0]
    assert served_versions(serving_home) == {champion} and serving_home.canary() is None


def test_breast_cancer_reaches_a_test_auc_of_at_least_095(tmp_path: Path) -> None:
    code, summary = run(tmp_path, "source_uri=demo://breast_cancer", "contract=breast_cancer",
                        "feature_repo=breast_cancer", *QUICK)  # the trainer's defaults, one tuning trial
    assert code == 0, summary["error"]
    tasks = {t["name"]: t for t in summary["tasks"]}
    assert tasks["validate-data"]["outputs"]["rows_valid"] == 569
    assert tasks["feature-training-set"]["outputs"]["Output"] == 569
    assert tasks["train"]["outputs"]["Output"] >= 0.95


def test_a_failing_task_fails_the_run_with_its_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, summary = run(tmp_path, "max_quarantine_share=0.001")
    assert code == 1 and summary["status"] == "FAILED"
    failed = [t for t in summary["tasks"] if t["status"] == "FAILED"]
    assert [t["name"] for t in failed] == ["validate-data"]
    assert "QuarantineThresholdError" in summary["error"]
    assert "QuarantineThresholdError" in capsys.readouterr().err


def test_user_data_from_a_folder(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    from components.data.events import EventsConfig, generate_events

    df = generate_events(EventsConfig(rows=600, seed=11))
    df[:300].write_parquet(src / "part-0.parquet")
    df[300:].write_parquet(src / "part-1.parquet")
    code, summary = run(tmp_path, f"source_uri={src}", "data_version=2026-11-23", *QUICK)
    assert code == 0, summary["error"]
    tasks = {t["name"]: t for t in summary["tasks"]}
    assert tasks["validate-data"]["outputs"]["rows_valid"] == 600
