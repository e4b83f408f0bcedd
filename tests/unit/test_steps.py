"""The train and tune steps: backend choice, artifact layout, cluster outputs copied back, Katib results typed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components._core.artifacts import write_json, write_text
from components.training.kubeflow import KubeflowTrainingBackend
from components.training.launch import JobPhase, JobStatus, LaunchSpec, RunningJob, TrainingBackend
from components.training.local import LocalTrainingBackend
from components.training.step import LaunchConfig, make_backend, train_step
from components.training.vertex import VertexTrainingBackend
from components.tuning.step import tune_step
from pipelines import defaults


class FinishedJob(RunningJob):
    def __init__(self, spec: LaunchSpec) -> None:
        self.name, out = spec.name, spec.output_uri
        write_json({"test_auc": 0.9, "val_auc": 0.91}, f"{out}/final_metrics.json")
        write_json({"features": [{"name": "a"}], "metrics": {}}, f"{out}/model/model_card.json")
        write_text("weights", f"{out}/model/model.safetensors")

    def status(self) -> JobStatus:
        return JobStatus(JobPhase.SUCCEEDED)

    def cancel(self) -> None:
        raise AssertionError("a finished job is not cancelled")

    def logs(self) -> str:
        return "rank 0: done\n"


class RecordingBackend(TrainingBackend):
    def __init__(self) -> None:
        self.specs: list[LaunchSpec] = []

    def start(self, spec: LaunchSpec) -> RunningJob:
        self.specs.append(spec)
        return FinishedJob(spec)


def test_cluster_training_writes_to_shared_storage_and_lands_in_the_artifacts(tmp_path: Path) -> None:
    backend = RecordingBackend()
    launch = {"backend": "kubeflow", "output_root": "memory://bucket/runs", "world_size": 3}
    out = train_step("memory://bucket/data.parquet", model_dir=str(tmp_path / "model"), run_dir=str(tmp_path / "run"),
                     trainer_config=defaults.TRAINER_CONFIG, launch=launch, run_id="run-1", task="train",
                     backend=backend)
    (spec,) = backend.specs
    assert spec.output_uri == f"memory://bucket/runs/{spec.name}" and spec.world_size == 3
    assert spec.name == out.name and spec.name.startswith("train-")
    assert (tmp_path / "model" / "model.safetensors").read_text() == "weights"
    assert out.metrics["test_auc"] == 0.9 and out.model_card["features"] == [{"name": "a"}]
    assert (tmp_path / "run" / "logs.txt").read_text() == "rank 0: done\n"
    assert json.loads((tmp_path / "run" / "final_metrics.json").read_text())["val_auc"] == 0.91


def test_names_are_deterministic_per_run_and_task(tmp_path: Path) -> None:
    names = []
    for i in range(2):
        backend = RecordingBackend()
        train_step("d", model_dir=str(tmp_path / f"m{i}"), run_dir=str(tmp_path / f"r{i}"), trainer_config={},
                   launch={}, run_id="run-7", task="train", backend=backend)
        names.append(backend.specs[0].name)
    assert names[0] == names[1]
    other = RecordingBackend()
    train_step("d", model_dir=str(tmp_path / "m"), run_dir=str(tmp_path / "r"), trainer_config={}, launch={},
               run_id="run-8", task="train", backend=other)
    assert other.specs[0].name != names[0]


@pytest.mark.parametrize("launch,cls", [
    ({}, LocalTrainingBackend),
    ({"backend": "kubeflow", "output_root": "gs://b/r"}, KubeflowTrainingBackend),
    ({"backend": "vertex", "output_root": "gs://b/r",
      "vertex": {"project": "p", "staging_bucket": "gs://b"}}, VertexTrainingBackend),
])
def test_make_backend_builds_each_backend_without_touching_a_cluster(launch: dict, cls: type) -> None:
    assert isinstance(make_backend(LaunchConfig.parse(launch), run_id="r", task="t"), cls)


class FakeKatib:
    def __init__(self) -> None:
        self.experiments: list[dict[str, Any]] = []

    def run(self, experiment: dict[str, Any], *, timeout_s: float, logs_uri: str) -> dict[str, Any]:
        self.experiments.append(experiment)
        write_text("controller logs", logs_uri)
        return {"trial": "t-3", "parameters": {"lr": "0.004", "dropout": "0.2"}, "metrics": {"val_auc": "0.97"}}


def test_katib_engine_returns_typed_best_parameters(tmp_path: Path) -> None:
    katib = FakeKatib()
    out = tune_step("gs://b/data", output_dir=str(tmp_path), spec=defaults.TUNING_SPEC,
                    trainer_config=json.loads(defaults.TRAINER_CONFIG), tune={"engine": "katib"},
                    launch={"backend": "kubeflow", "output_root": "gs://b/runs"}, run_id="r", task="tune",
                    katib_engine=katib)
    assert out.best_trainer_config["lr"] == 0.004 and out.best_trainer_config["hidden_sizes"] == [64, 32]
    assert out.best.value == 0.97 and out.best.trial_name == "t-3"
    (exp,) = katib.experiments
    assert exp["kind"] == "Experiment" and exp["spec"]["maxTrialCount"] == 3
    assert json.loads((tmp_path / "best_params.json").read_text())["params"] == {"lr": 0.004, "dropout": 0.2}


def test_katib_engine_needs_the_kubeflow_backend(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="engine=katib runs trials as PyTorchJobs"):
        tune_step("d", output_dir=str(tmp_path), spec=defaults.TUNING_SPEC, trainer_config={}, launch={},
                  tune={"engine": "katib"}, run_id="r", task="tune", katib_engine=FakeKatib())
