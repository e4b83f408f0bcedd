"""The tuning spec: Katib's ExperimentSpec fields and types, strict validation naming the field."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from components._core.config import ConfigError
from components.tuning.spec import TuningSpec


def _load_schemas() -> Any:
    """tests/schemas.py by path (the tests folder is not an importable package under every pytest layout)."""
    path = Path(__file__).resolve().parents[1] / "schemas.py"
    spec = importlib.util.spec_from_file_location("_tuning_test_schemas", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


validate_katib = _load_schemas().validate_katib


def spec_dict(**overrides: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "objective": {"type": "minimize", "goal": 0.1, "objectiveMetricName": "val_loss"},
        "algorithm": {"algorithmName": "tpe", "algorithmSettings": [
            {"name": "random_state", "value": "7"}, {"name": "n_startup_trials", "value": 5}]},
        "parameters": [
            {"name": "lr", "parameterType": "double",
             "feasibleSpace": {"min": "0.00001", "max": 0.1, "distribution": "logUniform"}},
            {"name": "hidden", "parameterType": "int", "feasibleSpace": {"min": 8, "max": 64, "step": 8}},
            {"name": "batch_size", "parameterType": "discrete", "feasibleSpace": {"list": [16, 32, 64]}},
            {"name": "optimizer.name", "parameterType": "categorical", "feasibleSpace": {"list": ["adam", "sgd"]}},
        ],
        "parallelTrialCount": 2,
        "maxTrialCount": 10,
        "maxFailedTrialCount": 2,
        "earlyStopping": {"algorithmName": "medianstop",
                          "algorithmSettings": [{"name": "min_trials_required", "value": "2"}]},
    }
    d.update(overrides)
    return d


def test_spec_serializes_to_katib_names_and_types_and_round_trips() -> None:
    spec = TuningSpec.parse(spec_dict())
    katib = spec.model_dump(by_alias=True, exclude_none=True)
    assert katib == spec.katib()
    assert set(katib) == {"objective", "algorithm", "parameters", "parallelTrialCount", "maxTrialCount",
                          "maxFailedTrialCount", "earlyStopping"}
    assert katib["objective"] == {"type": "minimize", "goal": 0.1, "objectiveMetricName": "val_loss"}
    assert katib["algorithm"]["algorithmSettings"] == [{"name": "random_state", "value": "7"},
                                                       {"name": "n_startup_trials", "value": "5"}]
    lr, hidden, batch, opt = katib["parameters"]
    # Katib's FeasibleSpace holds strings
    assert lr == {"name": "lr", "parameterType": "double",
                  "feasibleSpace": {"min": "1e-05", "max": "0.1", "distribution": "logUniform"}}
    assert hidden["feasibleSpace"] == {"min": "8", "max": "64", "step": "8"}
    assert batch["feasibleSpace"] == {"list": ["16", "32", "64"]}
    assert opt["feasibleSpace"] == {"list": ["adam", "sgd"]}
    assert katib["earlyStopping"] == {"algorithmName": "medianstop",
                                      "algorithmSettings": [{"name": "min_trials_required", "value": "2"}]}
    assert TuningSpec.parse(katib) == spec
    assert TuningSpec.parse(spec.to_json()) == spec


def test_spec_validates_against_the_katib_swagger_strictly() -> None:
    spec = TuningSpec.parse(spec_dict())
    experiment: dict[str, Any] = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
                  "metadata": {"name": "tune", "namespace": "team"}, "spec": spec.katib()}
    validate_katib(experiment)
    broken = copy.deepcopy(experiment)
    broken["spec"]["parameters"][0]["feasibleSpace"]["min"] = 0.00001  # a number where Katib wants a string
    with pytest.raises(AssertionError):
        validate_katib(broken)


def test_typed_accessors() -> None:
    spec = TuningSpec.parse(spec_dict())
    assert spec.algorithm.options() == {"random_state": 7, "n_startup_trials": 5}
    assert spec.early_stopping is not None
    assert spec.early_stopping.options() == {"min_trials_required": 2, "start_step": 4}  # Katib default start_step
    assert spec.objective.strategy == "min"
    assert spec.parameters[2].choices() == [16, 32, 64]
    assert spec.parameters[3].choices() == ["adam", "sgd"]
    assert spec.parameters[1].grid() == [8, 16, 24, 32, 40, 48, 56, 64]
    maximize = TuningSpec.parse(spec_dict(objective={"type": "maximize", "objectiveMetricName": "acc"}))
    assert maximize.objective.strategy == "max"
    latest = TuningSpec.parse(spec_dict(objective={
        "type": "maximize", "objectiveMetricName": "acc", "metricStrategies": [{"name": "acc", "value": "latest"}]}))
    assert latest.objective.strategy == "latest"


def test_digest_is_stable_and_follows_content() -> None:
    a, b = TuningSpec.parse(spec_dict()), TuningSpec.parse(spec_dict())
    assert a.digest() == b.digest()
    assert a.digest() != TuningSpec.parse(spec_dict(maxTrialCount=11)).digest()


def _param(name: str, ptype: str, **fs: Any) -> dict[str, Any]:
    return {"name": name, "parameterType": ptype, "feasibleSpace": fs}


BAD: list[tuple[dict[str, Any], str]] = [
    ({"maxTrialCount": 0}, r"TuningSpec\.maxTrialCount: .*greater than or equal to 1"),
    ({"parallelTrialCount": 0}, r"TuningSpec\.parallelTrialCount: .*greater than or equal to 1"),
    ({"maxFailedTrialCount": -1}, r"TuningSpec\.maxFailedTrialCount"),
    ({"parallelTrialCount": 11}, "parallelTrialCount must be <= maxTrialCount"),
    ({"maxFailedTrialCount": 11}, "maxFailedTrialCount must be <= maxTrialCount"),
    ({"trialTemplate": {}}, r"TuningSpec\.trialTemplate: Extra inputs are not permitted"),
    ({"objective": {"type": "largest", "objectiveMetricName": "m"}}, r"TuningSpec\.objective\.type"),
    ({"objective": {"type": "minimize", "objectiveMetricName": ""}}, r"objective\.objectiveMetricName"),
    ({"objective": {"type": "minimize", "objectiveMetricName": "m", "goal": "nan"}}, r"objective\.goal"),
    ({"algorithm": {"algorithmName": "bayesianoptimization"}}, r"algorithm\.algorithmName"),
    ({"algorithm": {"algorithmName": "tpe", "algorithmSettings": [{"name": "gamma", "value": "1"}]}},
     r"unknown setting 'gamma' for algorithm tpe"),
    ({"algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "-1"}]}},
     r"random_state.*must be in \[0"),
    ({"algorithm": {"algorithmName": "tpe", "algorithmSettings": [{"name": "n_ei_candidates", "value": "x"}]}},
     r"n_ei_candidates.*must be an integer"),
    ({"algorithm": {"algorithmName": "tpe", "algorithmSettings": [
        {"name": "random_state", "value": "1"}, {"name": "random_state", "value": "2"}]}}, "given twice"),
    ({"algorithm": {"algorithmName": "cmaes", "algorithmSettings": [{"name": "sigma", "value": "0"}]}},
     r"sigma.*> 0"),
    ({"algorithm": {"algorithmName": "cmaes", "algorithmSettings": [{"name": "restart_strategy", "value": "bipop"}]}},
     "restart_strategy"),
    ({"algorithm": {"algorithmName": "cmaes"}, "parameters": [_param("lr", "double", min=0.1, max=1),
                                                              _param("o", "categorical", list=["a", "b"])]},
     "cmaes needs at least two double or int parameters"),
    ({"algorithm": {"algorithmName": "grid"}}, "grid cannot search logUniform double parameter 'lr'"),
    ({"algorithm": {"algorithmName": "grid"}, "parameters": [_param("lr", "double", min=0.1, max=1)]},
     "grid needs feasibleSpace.step for double parameter 'lr'"),
    ({"algorithm": {"algorithmName": "grid"}, "maxFailedTrialCount": 1,
      "parameters": [_param("n", "int", min=1, max=3)]}, "maxTrialCount 10 exceeds the 3 grid combinations"),
    ({"parameters": []}, r"TuningSpec\.parameters: .*at least 1"),
    ({"parameters": [_param("lr", "double", min=1, max=1)]}, "min must be < max"),
    ({"parameters": [_param("lr", "double", max=1)]}, "needs feasibleSpace.min and max"),
    ({"parameters": [_param("lr", "double", min=0, max=1, list=["1"])]}, "takes min/max, not list"),
    ({"parameters": [_param("lr", "double", min=0, max=1, distribution="logUniform")]}, "logUniform needs"),
    ({"parameters": [_param("lr", "double", min=0.1, max=1, distribution="normal")]}, r"feasibleSpace\.distribution"),
    ({"parameters": [_param("lr", "double", min=0.1, max=1, step=0.1, distribution="logUniform")]},
     "logUniform cannot be combined with step"),
    ({"parameters": [_param("lr", "double", min=0, max=1, step=2)]}, "step exceeds max - min"),
    ({"parameters": [_param("n", "int", min=0.5, max=4)]}, r"feasibleSpace\.min must be an integer"),
    ({"parameters": [_param("o", "categorical")]}, "needs feasibleSpace.list"),
    ({"parameters": [_param("o", "categorical", list=["a"], min=1)]}, "takes only list"),
    ({"parameters": [_param("o", "categorical", list=["a", "a"])]}, "has duplicates"),
    ({"parameters": [_param("b", "discrete", list=["16", "x"])]}, "every list value must be a number"),
    ({"parameters": [_param("b", "discrete", list=["16", "16.0"])]}, "duplicate numbers"),
    ({"parameters": [_param("lr", "double", min=0, max=1), _param("lr", "double", min=0, max=1)]},
     "parameter names must be unique"),
    ({"parameters": [_param("opt", "categorical", list=["a"]), _param("opt.lr", "double", min=0, max=1)]},
     "is nested under parameter 'opt'"),
    ({"parameters": [_param("bad name", "double", min=0, max=1)]}, r"parameters\.0\.name"),
    ({"parameters": [_param("x", "bool", list=["a"])]}, r"parameters\.0\.parameterType"),
    ({"earlyStopping": {"algorithmName": "truncationstop"}}, r"earlyStopping\.algorithmName"),
    ({"earlyStopping": {"algorithmSettings": [{"name": "start_step", "value": "0"}]}}, r"start_step.*must be in"),
    ({"earlyStopping": {"algorithmSettings": [{"name": "min_trials", "value": "1"}]}},
     "unknown setting 'min_trials' for earlyStopping medianstop"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD)
def test_bad_specs_fail_naming_the_field(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TuningSpec.parse(spec_dict(**overrides))


def test_grid_and_cmaes_specs_that_fit_are_accepted() -> None:
    grid = TuningSpec.parse(spec_dict(
        algorithm={"algorithmName": "grid"}, maxTrialCount=6, maxFailedTrialCount=1,
        parameters=[_param("lr", "double", min=0.1, max=0.3, step=0.1), _param("o", "categorical", list=["a", "b"])],
    ))
    assert grid.grid_space() == {"lr": [0.1, 0.2, 0.3], "o": ["a", "b"]}
    cma = TuningSpec.parse(spec_dict(algorithm={"algorithmName": "cmaes", "algorithmSettings": [
        {"name": "sigma", "value": "0.5"}, {"name": "restart_strategy", "value": "none"}]}))
    assert cma.algorithm.options() == {"sigma": 0.5, "restart_strategy": None}
