"""Katib Experiment builder (checked against Katib's swagger definitions) and the Katib engine on the fake API."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from components._core import podsecurity
from components._core.k8s import ResourceFailed
from components.training.launch import LaunchSpec
from components.tuning import katib
from components.tuning.spec import TuningSpec
from tests.fakes.k8s import FakeCoreV1Api, FakeCustomObjectsApi, ManualClock
from tests.schemas import validate_katib, validate_pytorchjob

TUNING = {
    "objective": {
        "type": "minimize",
        "goal": 0.1,
        "objectiveMetricName": "val_loss",
        "additionalMetricNames": ["val_acc"],
    },
    "algorithm": {"algorithmName": "tpe", "algorithmSettings": [{"name": "random_state", "value": 7}]},
    "parameters": [
        {
            "name": "lr",
            "parameterType": "double",
            "feasibleSpace": {"min": 1e-4, "max": 0.1, "distribution": "logUniform"},
        },
        {"name": "model.hidden", "parameterType": "int", "feasibleSpace": {"min": 8, "max": 64, "step": 8}},
        {"name": "optimizer", "parameterType": "categorical", "feasibleSpace": {"list": ["adam", "sgd"]}},
        {"name": "batch_size", "parameterType": "discrete", "feasibleSpace": {"list": [32, 64]}},
    ],
    "parallelTrialCount": 2,
    "maxTrialCount": 8,
    "maxFailedTrialCount": 2,
    "earlyStopping": {
        "algorithmName": "medianstop",
        "algorithmSettings": [{"name": "min_trials_required", "value": 2}],
    },
}
ASSIGNMENT = {"lr": "1e-05", "model_hidden": "16", "optimizer": "sgd", "batch_size": "64"}


def trial(**kw) -> LaunchSpec:
    base = {
        "name": "tune-trial",
        "trainer_config": {"epochs": 5, "model": {"hidden": 8, "layers": 2}},
        "data_uri": "gs://b/train.parquet",
        "output_uri": "/var/log/katib/output",
        "world_size": 2,
        "image": "ghcr.io/kfp-component-catalog/torch:0.1.0",
        "timeout_s": 1800,
    }
    return LaunchSpec.parse({**base, **kw})


def build(tuning: dict | None = None, **kw) -> dict:
    spec = TuningSpec.model_validate(tuning or TUNING).katib()
    return katib.build_experiment(spec, kw.pop("trial", trial()), namespace="ml", run_id="run-1", task="tune", **kw)


def substitute(trial_spec: dict, values: dict[str, str]) -> dict:
    """What Katib's trial controller does: plain text replacement of ${trialParameters.x}."""
    text = json.dumps(trial_spec)
    for name, value in values.items():
        text = text.replace(f"${{trialParameters.{name}}}", value)
    assert "${trialParameters." not in text
    return json.loads(text)


def test_experiment_is_valid_against_katib_swagger_and_trial_against_the_pytorchjob_crd() -> None:
    exp = build()
    validate_katib(exp)
    trial_job = substitute(exp["spec"]["trialTemplate"]["trialSpec"], ASSIGNMENT)
    validate_pytorchjob({**trial_job, "metadata": {**trial_job["metadata"], "name": "trial-x"}})


def test_the_katib_validator_catches_misspelt_and_mistyped_fields() -> None:
    exp = build()
    typo = copy.deepcopy(exp)
    typo["spec"]["parallelTrialcount"] = typo["spec"].pop("parallelTrialCount")
    with pytest.raises(AssertionError, match="parallelTrialcount"):
        validate_katib(typo)
    wrong = copy.deepcopy(exp)
    wrong["spec"]["parameters"][0]["feasibleSpace"]["min"] = 0.0001
    with pytest.raises(AssertionError, match="feasibleSpace"):
        validate_katib(wrong)


def test_spec_fields_mirror_the_tuning_spec() -> None:
    spec = build()["spec"]
    assert spec["objective"] == {
        "additionalMetricNames": ["val_acc"],
        "goal": 0.1,
        "objectiveMetricName": "val_loss",
        "type": "minimize",
    }
    assert spec["algorithm"] == {"algorithmName": "tpe", "algorithmSettings": [{"name": "random_state", "value": "7"}]}
    assert (spec["parallelTrialCount"], spec["maxTrialCount"], spec["maxFailedTrialCount"]) == (2, 8, 2)
    assert spec["earlyStopping"]["algorithmName"] == "medianstop"
    assert spec["parameters"][1] == {
        "feasibleSpace": {"max": "64", "min": "8", "step": "8"},
        "name": "model.hidden",
        "parameterType": "int",
    }
    assert spec["parameters"][3]["feasibleSpace"] == {"list": ["32", "64"]}


def test_trial_template_substitutes_typed_values_into_the_trainer_config() -> None:
    template = build()["spec"]["trialTemplate"]
    assert template["primaryContainerName"] == "pytorch"
    assert template["primaryPodLabels"] == {"training.kubeflow.org/job-role": "master"}
    assert {p["name"]: p["reference"] for p in template["trialParameters"]} == {
        "lr": "lr",
        "model_hidden": "model.hidden",
        "optimizer": "optimizer",
        "batch_size": "batch_size",
    }
    job = substitute(template["trialSpec"], ASSIGNMENT)
    cmd = job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["command"]
    config = json.loads(cmd[cmd.index("--config") + 1])
    assert config == {
        "batch_size": 64,
        "epochs": 5,
        "lr": 1e-05,
        "model": {"hidden": 16, "layers": 2},
        "optimizer": "sgd",
    }
    assert cmd[cmd.index("--output-uri") + 1] == "/var/log/katib/output"
    assert "name" not in job["metadata"] and "namespace" not in job["metadata"]
    for replica in job["spec"]["pytorchReplicaSpecs"].values():
        assert podsecurity.violations(replica["template"]["spec"]) == []
        assert replica["template"]["metadata"]["labels"][katib.EXPERIMENT_LABEL] == build()["metadata"]["name"]


def test_metrics_collector_reads_the_trainers_metrics_lines() -> None:
    mc = build()["spec"]["metricsCollectorSpec"]
    assert mc["collector"] == {"kind": "File"}
    assert mc["source"]["fileSystemPath"] == {
        "format": "TEXT",
        "kind": "File",
        "path": "/var/log/katib/output/metrics.jsonl",
    }
    (pattern,) = mc["source"]["filter"]["metricsFormat"]
    assert re.fullmatch(r".*\(.*\).*\(.*\).*", pattern)  # Katib's "two top subexpressions" admission rule
    line = json.dumps({"epoch": 3, "val_loss": 0.25, "val_acc": 9.1e-01, "train_loss": -1.5e-3})
    found = {m.group(1): float(m.group(2)) for m in re.finditer(pattern, line)}
    assert found == {"epoch": 3.0, "val_loss": 0.25, "val_acc": 0.91, "train_loss": -0.0015}


def test_name_is_deterministic_and_short_enough_for_trial_names() -> None:
    a, b = build()["metadata"]["name"], build()["metadata"]["name"]
    assert a == b and len(a) <= 40 and a.startswith("katib-tune-")
    assert json.dumps(build()) == json.dumps(build())
    assert build(name="my-exp")["metadata"]["name"] == "my-exp"


def test_rejects_what_katib_cannot_run() -> None:
    spec = TuningSpec.model_validate(TUNING).katib()
    with pytest.raises(ValueError, match="absolute local path"):
        katib.build_experiment(spec, trial(output_uri="gs://b/out"), namespace="ml", run_id="r", task="t")
    with pytest.raises(ValueError, match="tuning spec keys"):
        katib.build_experiment({**spec, "maxTrialcount": 3}, trial(), namespace="ml", run_id="r", task="t")
    bad = copy.deepcopy(spec)
    bad["parameters"][2]["feasibleSpace"]["list"] = ['a"b']
    with pytest.raises(ValueError, match="quotes"):
        katib.build_experiment(bad, trial(), namespace="ml", run_id="r", task="t")
    with pytest.raises(ValueError, match="not a mapping"):
        katib.build_experiment(spec, trial(trainer_config={"model": 3}), namespace="ml", run_id="r", task="t")


def test_a_plain_dict_with_settings_as_a_mapping_is_accepted() -> None:
    raw = {
        "objective": {"type": "maximize", "objectiveMetricName": "val_acc", "goal": None},
        "algorithm": {"algorithmName": "random", "algorithmSettings": {"random_state": 1}},
        "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": 0.1, "max": 1}}],
    }
    exp = katib.build_experiment(raw, trial(), namespace="ml", run_id="r", task="t")
    validate_katib(exp)
    assert exp["spec"]["objective"] == {"objectiveMetricName": "val_acc", "type": "maximize"}
    assert exp["spec"]["algorithm"]["algorithmSettings"] == [{"name": "random_state", "value": "1"}]


def engine_with_fake() -> tuple[katib.KatibEngine, FakeCustomObjectsApi, FakeCoreV1Api]:
    core = FakeCoreV1Api()
    api = FakeCustomObjectsApi(core)
    engine = katib.KatibEngine("ml", api=api, core_api=core, clock=ManualClock().clock(), poll_interval_s=30)
    return engine, api, core


def test_engine_runs_through_the_shared_launcher_and_returns_the_best_trial(tmp_path: Path) -> None:
    engine, api, _ = engine_with_fake()
    exp = build()
    name = exp["metadata"]["name"]
    engine.launcher().apply(exp)
    api.patch_namespaced_custom_object_status(
        "kubeflow.org",
        "v1beta1",
        "ml",
        "experiments",
        name,
        {
            "status": {
                "currentOptimalTrial": {
                    "bestTrialName": f"{name}-abc",
                    "parameterAssignments": [{"name": "lr", "value": "0.01"}],
                    "observation": {"metrics": [{"name": "val_loss", "latest": "0.2", "min": "0.15", "max": "0.9"}]},
                }
            }
        },
    )
    api.script(name, "Created", "Running", "Succeeded")
    best = engine.run(exp, timeout_s=3600, logs_uri=str(tmp_path / "katib.log"))
    assert best == {
        "trial": f"{name}-abc",
        "parameters": {"lr": "0.01"},
        "metrics": {"val_loss": {"latest": "0.2", "max": "0.9", "min": "0.15"}},
    }
    assert len(api.stored("experiments")) == 1  # adopted, not created twice


def test_engine_failure_carries_logs_of_trial_pods(tmp_path: Path) -> None:
    engine, api, core = engine_with_fake()
    exp = build()
    name = exp["metadata"]["name"]
    core.add_pod("ml", f"{name}-t1-master-0", {katib.EXPERIMENT_LABEL: name}, logs={"pytorch": "trial crashed\n"})
    engine.launcher().apply(exp)
    api.script(name, ("Failed", "True", "ExperimentFailed", "max failed trials reached"))
    logs = tmp_path / "katib.log"
    with pytest.raises(ResourceFailed, match="max failed trials reached"):
        engine.run(exp, timeout_s=3600, logs_uri=str(logs))
    assert "trial crashed" in logs.read_text()
