"""The tune wrapper's ``python_func`` on temporary artifacts, as KFP's executor would call it, for every engine and
backend the component offers: Optuna with trials as PyTorchJobs, as Vertex CustomJobs and as local torchrun
processes (slow), and a Katib Experiment, including a failed one (the trials table and the history page are
written before the step fails)."""

import json
import math
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from kfp import dsl

from components._core.k8s_meta import deterministic_name
from components._kfp import ingest, tune
from components.training import vertex
from components.training.config import TrainerConfig
from components.tuning.katib import MAX_NAME
from components.tuning.step import TuningFailed
from tests.component.artifacts import artifact, outputs
from tests.fakes.operators import Cluster, VertexTrainer, trainer_args
from tests.schemas import validate_pytorchjob

TRAINER = {"hidden_sizes": [16], "max_epochs": 3, "early_stopping": {"metric": "val_auc", "patience": 0},
           "seed": 3}
SPEC: dict[str, Any] = {
    "objective": {"type": "maximize", "objectiveMetricName": "val_auc"},
    "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "4"}]},
    "parameters": [
        {"name": "lr", "parameterType": "double",
         "feasibleSpace": {"min": 1e-4, "max": 3e-2, "distribution": "logUniform"}},
        {"name": "batch_size", "parameterType": "discrete", "feasibleSpace": {"list": [32, 64]}},
    ],
    "parallelTrialCount": 2, "maxTrialCount": 3, "maxFailedTrialCount": 0,
}


def auc(cfg: dict[str, Any]) -> list[float]:
    top = 0.97 - 0.05 * abs(math.log10(cfg["lr"]) + 2.5)
    return [top - 0.2 / (e + 1) for e in range(cfg["max_epochs"])]


def _shared_training_set() -> dsl.Artifact:
    """The training set as a cluster pipeline hands it over: an artifact in shared storage, which trial jobs read."""
    return dsl.Dataset(name="training_set", uri="gs://pipeline-root/run-w/training_set", metadata={})


def _outs(tmp_path: Path) -> dict[str, dsl.Artifact]:
    return outputs(tmp_path / "out", trials=dsl.Dataset, history=dsl.HTML, run=dsl.Artifact, metrics=dsl.Metrics)


def _call(tmp_path: Path, launch: dict[str, Any], tune_config: dict[str, Any] | None = None,
          data: dsl.Artifact | None = None, run_id: str = "run-w") -> tuple[tuple[dict[str, Any], float],
                                                                           dict[str, dsl.Artifact]]:
    outs = _outs(tmp_path)
    (tmp_path / "out").mkdir(exist_ok=True)  # KFP's executor makes the outputs' folder
    got = tune.python_func(training_set=data or _shared_training_set(), tuning_spec=json.dumps(SPEC),
                           trainer_config=json.dumps(TRAINER), launch=json.dumps(launch),
                           tune_config=json.dumps(tune_config or {}), run_id=run_id, task="tune", **outs)
    return got, outs


def _check_outputs(got: tuple[dict[str, Any], float], outs: dict[str, dsl.Artifact], trials: int) -> pl.DataFrame:
    """What every successful run leaves in its artifacts; returns the trials table."""
    best_config, best_value = got
    table = pl.read_parquet(outs["trials"].path)
    assert table.height == trials and set(table["state"].to_list()) == {"Succeeded"}
    assert best_value == table["value"].max()
    best = table.filter(pl.col("value") == best_value).row(0, named=True)
    assert best_config["lr"] == best["params_lr"] and best_config["batch_size"] == best["params_batch_size"]
    assert type(best_config["batch_size"]) is int and best_config["hidden_sizes"] == [16]
    TrainerConfig.parse(best_config)
    run = Path(outs["run"].path)
    assert json.loads((run / "best_trainer_config.json").read_text()) == best_config
    assert outs["run"].metadata["best_value"] == best_value and outs["run"].metadata["trials"] == trials
    assert outs["run"].metadata["best_trial"] == best["name"]
    assert outs["metrics"].metadata["trials"] == trials and outs["metrics"].metadata["best_val_auc"] == best_value
    assert all(isinstance(v, float) for v in outs["metrics"].metadata.values())
    page = Path(outs["history"].path).read_text()
    assert page == (run / "optimization_history.html").read_text() and "Optimization History Plot" in page
    return table


def test_optuna_with_pytorchjob_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster(auc).install(monkeypatch)
    launch = {"backend": "kubeflow", "output_root": f"memory://bucket/{tmp_path.name}",
              "kubeflow": {"namespace": "ml", "wait": {"poll_interval_s": 0.01}}}
    got, outs = _call(tmp_path, launch)
    table = _check_outputs(got, outs, trials=3)
    jobs = cluster.jobs()
    assert sorted(j["metadata"]["name"] for j in jobs) == sorted(table["name"].to_list())
    for job in jobs:
        validate_pytorchjob(job)
        assert trainer_args(job)["data-uri"] == "gs://pipeline-root/run-w/training_set"  # where pods can read it


def test_optuna_with_vertex_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = VertexTrainer(auc)
    monkeypatch.setattr(vertex, "default_client", lambda cfg: client)
    launch = {"backend": "vertex", "output_root": f"memory://bucket/{tmp_path.name}", "world_size": 1,
              "vertex": {"project": "p", "staging_bucket": "gs://staging", "wait": {"poll_interval_s": 0.01}}}
    got, outs = _call(tmp_path, launch)
    table = _check_outputs(got, outs, trials=3)
    assert sorted(j.display_name for j in client.jobs.values()) == sorted(table["name"].to_list())
    assert {j.state for j in client.jobs.values()} == {"JOB_STATE_SUCCEEDED"}


def _katib(monkeypatch: pytest.MonkeyPatch, fail: str | None = None) -> Cluster:
    cluster = Cluster().install(monkeypatch)
    values = [0.91, 0.96, 0.93]
    cluster.katib(lambda i: {"lr": ["0.001", "0.003", "0.01"][i], "batch_size": ["32", "64", "32"][i]},
                  lambda p: values[["0.001", "0.003", "0.01"].index(p["lr"])], trials=3, fail=fail)
    return cluster


KATIB_LAUNCH = {"backend": "kubeflow", "output_root": "s3://bucket/tuning",
                "kubeflow": {"namespace": "ml", "wait": {"poll_interval_s": 0.01}}}


def test_katib_writes_the_trials_table_and_the_history_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = _katib(monkeypatch)
    got, outs = _call(tmp_path, KATIB_LAUNCH, {"engine": "katib"})
    table = _check_outputs(got, outs, trials=3)
    assert got[0]["lr"] == 0.003 and got[0]["batch_size"] == 64 and got[1] == 0.96
    (exp,) = cluster.api.stored("experiments")
    assert exp["metadata"]["name"] == deterministic_name("run-w", "tune", "katib", max_len=MAX_NAME)
    assert table["name"].to_list() == [f"{exp['metadata']['name']}-t{i}" for i in range(3)]
    assert outs["run"].metadata["study"] == exp["metadata"]["name"]


def test_a_failed_katib_experiment_fails_the_step_with_its_reports_written(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _katib(monkeypatch, fail="Experiment has failed because max failed count has reached")
    outs = _outs(tmp_path)
    (tmp_path / "out").mkdir()
    with pytest.raises(TuningFailed, match="ExperimentMaxFailedTrialsReached"):
        tune.python_func(training_set=_shared_training_set(), tuning_spec=json.dumps(SPEC),
                         trainer_config=json.dumps(TRAINER), launch=json.dumps(KATIB_LAUNCH),
                         tune_config='{"engine": "katib"}', run_id="run-w", task="tune", **outs)
    assert pl.read_parquet(outs["trials"].path)["value"].to_list() == [0.91, 0.96, 0.93]
    assert "ExperimentMaxFailedTrialsReached" in Path(outs["history"].path).read_text()
    assert not (Path(outs["run"].path) / "best_trainer_config.json").exists()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_optuna_with_local_torchrun_trials_on_breast_cancer(tmp_path: Path) -> None:
    data = artifact(dsl.Dataset, tmp_path / "bc")
    assert ingest.python_func(dataset=data, source_uri="demo://breast_cancer") == 569
    launch = {"backend": "local", "world_size": 1, "timeout_s": 300,
              "local": {"stream_logs": False, "wait": {"poll_interval_s": 0.2}}}
    got, outs = _call(tmp_path, launch, data=data, run_id="run-wrapper-local")
    table = _check_outputs(got, outs, trials=3)
    assert table["intermediate_count"].to_list() == [3, 3, 3] and got[1] > 0.9
    run = Path(outs["run"].path)
    for name in table["name"].to_list():  # each trial trained for real, in its own folder
        assert (run / "trials" / name / "model" / "model.safetensors").stat().st_size > 0
