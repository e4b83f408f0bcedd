"""Real trials: the trainer under torch.distributed.run through LocalTrainingBackend, tuned by the engine."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from components.data.breast_cancer import breast_cancer_events
from components.training.launch import LaunchSpec
from components.training.local import LocalTrainingBackend
from components.tuning.run import run_step

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


def test_three_real_trials_two_at_a_time(tmp_path: Path) -> None:
    data = tmp_path / "bc.parquet"
    breast_cancer_events().write_parquet(data)
    base = LaunchSpec.parse({
        "name": "tune-bc", "data_uri": str(data), "output_uri": str(tmp_path / "runs"), "world_size": 1,
        "timeout_s": 300,
        "trainer_config": {"max_epochs": 3, "hidden_sizes": [16], "early_stopping": {"patience": 0}, "seed": 3},
    })
    spec = {
        "objective": {"type": "maximize", "objectiveMetricName": "val_auc"},
        "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "4"}]},
        "parameters": [
            {"name": "lr", "parameterType": "double",
             "feasibleSpace": {"min": 1e-4, "max": 3e-2, "distribution": "logUniform"}},
            {"name": "early_stopping.metric", "parameterType": "categorical",
             "feasibleSpace": {"list": ["val_auc", "val_loss"]}},
        ],
        "parallelTrialCount": 2, "maxTrialCount": 3, "maxFailedTrialCount": 0,
    }
    backend = LocalTrainingBackend(log_dir=str(tmp_path / "logs"), stream=False)
    out = tmp_path / "tuning"
    result = run_step({"spec": spec, "poll_interval_s": 0.5, "renderer": "svg"}, base, backend, str(out))
    t = result.trials
    assert t["state"].to_list() == ["Succeeded"] * 3, t["message"].to_list()
    assert t["intermediate_count"].to_list() == [3, 3, 3]
    for row in t.iter_rows(named=True):
        trial_dir = tmp_path / "runs" / "trials" / row["name"]
        card = json.loads((trial_dir / "model" / "model_card.json").read_text())
        assert card["trainer_config"]["lr"] == row["params_lr"]  # the trial's parameters reached the trainer
        assert card["trainer_config"]["early_stopping"]["metric"] == row["params_early_stopping.metric"]
        assert card["trainer_config"]["hidden_sizes"] == [16]  # the rest of the base config kept
        epochs = pl.read_ndjson(trial_dir / "metrics.jsonl")
        assert row["value"] == pytest.approx(max(epochs["val_auc"].max(), card["metrics"]["val_auc"]))
    assert result.best_value is not None and result.best_value == t["value"].max() and result.best_value > 0.9
    best = json.loads((out / "best_trainer_config.json").read_text())
    assert best["lr"] == result.best_params["lr"] and best["max_epochs"] == 3  # type: ignore[index]
