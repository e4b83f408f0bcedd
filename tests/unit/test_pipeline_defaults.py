"""Every default configuration a pipeline ships validates against its config model."""

from __future__ import annotations

import json

import pytest

from components._core.config import ConfigError
from components.training.config import TrainerConfig
from components.training.launch import LaunchConfig
from components.tuning.config import TuneConfig
from components.tuning.spec import TuningSpec
from pipelines import defaults


def test_defaults_validate() -> None:
    TrainerConfig.parse(defaults.TRAINER_CONFIG)
    spec = TuningSpec.parse(defaults.TUNING_SPEC)
    assert spec.katib()["maxTrialCount"] <= 4  # quick on one machine
    assert LaunchConfig.parse(defaults.LAUNCH).backend == "local"
    assert TuneConfig.parse(defaults.TUNE).engine == "optuna"


def test_tuned_parameters_exist_in_the_trainer_config() -> None:
    trainer = json.loads(defaults.TRAINER_CONFIG)
    for p in json.loads(defaults.TUNING_SPEC)["parameters"]:
        assert p["name"].split(".")[0] in trainer


def test_cluster_launch_needs_shared_storage_and_vertex_needs_a_project() -> None:
    with pytest.raises(ConfigError, match="output_root must be shared storage"):
        LaunchConfig.parse({"backend": "kubeflow"})
    with pytest.raises(ConfigError, match=r"vertex .* is required"):
        LaunchConfig.parse({"backend": "vertex", "output_root": "gs://b/runs"})
    assert LaunchConfig.parse({"backend": "kubeflow", "output_root": "s3://b/runs"}).world_size == 2
