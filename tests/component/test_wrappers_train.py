"""The train wrapper's ``python_func`` on temporary artifacts with the local backend (real torchrun ranks); the
cluster backends' wrapper tests live with their step tests (test_train_step_kubeflow.py, test_vertex.py)."""

import json
from pathlib import Path

import pytest
from kfp import dsl

from components._kfp import train
from components.data.breast_cancer import breast_cancer_events
from components.drift.bundle import read_bundle
from tests.component.artifacts import outputs


@pytest.mark.slow
def test_the_wrapper_trains_with_local_ranks(tmp_path: Path) -> None:
    data = outputs(tmp_path, training_set=dsl.Dataset)["training_set"]
    breast_cancer_events().write_parquet(data.path)
    out = outputs(tmp_path, model=dsl.Model, run=dsl.Artifact, metrics=dsl.Metrics)
    config = {"max_epochs": 3, "seed": 1}
    launch = json.dumps({"world_size": 2, "local": {"stream_logs": False, "wait": {"poll_interval_s": 0.2}}})
    stats = outputs(tmp_path, stats=dsl.Artifact)["stats"]
    contract = {"columns": [{"name": "label", "dtype": "int64", "nullable": False}]}
    Path(stats.path).write_text(json.dumps({"summary": {}, "contract": contract}))
    auc = train.python_func(training_set=data, trainer_config=config, launch=launch, run_id="r-local",
                            task="train", validation=stats, **out)
    assert 0.5 < auc <= 1.0 and out["metrics"].metadata["test_auc"] == auc
    assert out["model"].metadata["framework"] == "pytorch" and out["model"].metadata["attempt"] == 1
    assert Path(out["model"].path, "model.safetensors").exists()
    assert "attempt 1" in Path(out["run"].path, "logs.txt").read_text()
    bundle = read_bundle(out["model"].path)  # what monitoring needs travels with the model
    assert bundle.contract == contract and bundle.reference.height == breast_cancer_events().height
    assert "prediction" in bundle.reference.columns and bundle.roles.numerical
