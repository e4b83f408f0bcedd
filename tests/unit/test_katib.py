"""Katib Experiment builder (checked against Katib's swagger definitions), and the Katib engine on the fake API:
the shared launcher and wait path, attempts, SIGTERM and the deadline, Trials as Optuna trials, stop reasons."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException
from optuna.trial import TrialState

from components._core import podsecurity
from components._core.jobs import JobPhase
from components._core.k8s_meta import ATTEMPT_LABEL, STEP_LABEL
from components._core.signals import Terminated
from components.training.launch import KubeflowOptions, LaunchError, LaunchSpec
from components.tuning import katib
from components.tuning.katib_run import KatibEngine, frozen_trials, stop_reason
from components.tuning.results import StopReason, TrialOutcome, trials_table
from components.tuning.spec import TuningSpec
from tests.fakes.clock import ManualClock
from tests.fakes.k8s import FakeCoreV1Api, FakeCustomObjectsApi, SimulatedCrash
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


# ---------------------------------------------------------------- the engine on the fake apiserver

NS = "ml"
STEP = "katib-tune-0123456789"
GROUP, VERSION = "kubeflow.org", "v1beta1"


def manifest_for(name: str) -> dict:
    return build(name=name)


class Katib:
    """The fake apiserver the engine talks to; the test plays Katib's controller with scripts and Trials."""

    def __init__(self) -> None:
        self.core = FakeCoreV1Api()
        self.api = FakeCustomObjectsApi(self.core)
        self.clock = ManualClock()

    def engine(self, **wait: float) -> KatibEngine:
        options = KubeflowOptions.parse({"namespace": NS, "wait": {"poll_interval_s": 30, **wait}})
        return KatibEngine(options, api=self.api, core_api=self.core, clock=self.clock.clock())

    def run(self, tmp_path: Path, timeout_s: float = 3600, **wait: float):
        return self.engine(**wait).run(STEP, manifest_for, timeout_s=timeout_s, logs_uri=str(tmp_path / "katib.log"))

    def add_trial(self, experiment: str, name: str, params: dict[str, str], state: str = "Succeeded",
                  value: float | None = 0.3) -> None:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Trial",
                "metadata": {"name": name, "labels": {katib.TRIAL_EXPERIMENT_LABEL: experiment}},
                "spec": {"parameterAssignments": [{"name": k, "value": v} for k, v in params.items()]}}
        self.api.create_namespaced_custom_object(GROUP, VERSION, NS, "trials", body)
        status: dict = {"conditions": [{"type": "Created", "status": "True"}, {"type": state, "status": "True",
                                                                              "message": f"trial {state}"}]}
        if value is not None:
            status["observation"] = {"metrics": [{"name": "val_loss", "min": str(value), "max": str(value + 1),
                                                  "latest": str(value + 0.5)}]}
        self.api.patch_namespaced_custom_object_status(GROUP, VERSION, NS, "trials", name, {"status": status})

    def experiments(self) -> list[dict]:
        return self.api.stored("experiments")


def test_the_engine_creates_the_experiment_waits_on_it_and_lists_its_trials(tmp_path: Path) -> None:
    k = Katib()
    k.add_trial(STEP, f"{STEP}-a", ASSIGNMENT)
    k.add_trial("someone-else", "other-trial", ASSIGNMENT)
    k.api.script(STEP, "Created", "Running", ("Succeeded", "True", "ExperimentMaxTrialsReached", "done"))
    ran = k.run(tmp_path)
    assert ran.status.phase is JobPhase.SUCCEEDED and ran.status.message == "ExperimentMaxTrialsReached: done"
    (exp,) = k.experiments()
    assert exp["metadata"]["name"] == STEP and not ran.launch.adopted
    assert exp["metadata"]["labels"][STEP_LABEL] == STEP and exp["metadata"]["labels"][ATTEMPT_LABEL] == "1"
    assert exp["spec"] == build(name=STEP)["spec"]
    validate_katib({**exp, "metadata": {"name": exp["metadata"]["name"], "namespace": NS}})
    assert [t["metadata"]["name"] for t in ran.trials] == [f"{STEP}-a"]  # only this experiment's trials
    assert k.clock.sleeps == [30.0, 30.0]  # KubeflowOptions.wait.poll_interval_s
    assert (tmp_path / "katib.log").read_text().startswith(f"== attempt 1 {STEP}: Pending, created\n")
    assert stop_reason(ran.experiment) is StopReason.MAX_TRIALS


def test_a_transient_api_error_does_not_fail_the_wait(tmp_path: Path) -> None:
    k = Katib()
    k.api.script(STEP, "Running", "Succeeded")
    k.api.fail_next("get", ApiException(status=503, reason="Service Unavailable"), times=2)
    ran = k.run(tmp_path)
    assert ran.status.phase is JobPhase.SUCCEEDED and len(k.experiments()) == 1
    assert k.clock.sleeps[:2] == [1.0, 2.0]  # backoff after each 503, then the poll interval


def test_a_failed_experiment_carries_the_trial_pods_logs_and_the_retry_starts_attempt_two(tmp_path: Path) -> None:
    k = Katib()
    k.core.add_pod(NS, f"{STEP}-t1-master-0", {katib.EXPERIMENT_LABEL: STEP}, logs={"pytorch": "trial crashed\n"})
    k.api.script(STEP, ("Failed", "True", "ExperimentMaxFailedTrialsReached", "max failed trials reached"))
    ran = k.run(tmp_path / "first")
    assert ran.status.phase is JobPhase.FAILED and "max failed trials reached" in ran.status.message
    assert stop_reason(ran.experiment) is StopReason.MAX_FAILED_TRIALS
    assert "trial crashed" in (tmp_path / "first" / "katib.log").read_text()

    k.api.script(f"{STEP}-a2", "Running", "Succeeded")
    again = k.run(tmp_path / "retry")
    assert again.status.phase is JobPhase.SUCCEEDED and again.launch.job.name == f"{STEP}-a2"
    assert again.launch.job.attempt == 2 and not again.launch.adopted
    assert [e["metadata"]["labels"][ATTEMPT_LABEL] for e in k.experiments()] == ["1", "2"]
    log = (tmp_path / "retry" / "katib.log").read_text()
    assert f"== attempt 1 {STEP}: Failed, ended before: ExperimentMaxFailedTrialsReached" in log
    assert f"== attempt 2 {STEP}-a2: Pending, created" in log


def test_a_retry_adopts_a_running_experiment(tmp_path: Path) -> None:
    k = Katib()
    k.api.script(STEP, "Running")
    k.clock.on_sleep = lambda n: (_ for _ in ()).throw(SimulatedCrash("step pod evicted")) if n == 1 else None
    with pytest.raises(SimulatedCrash):
        k.run(tmp_path / "first")
    assert len(k.experiments()) == 1 and k.api.deletions == []  # left running for the retry
    k.clock.on_sleep = None
    k.api.script(STEP, "-", "Succeeded")
    ran = k.run(tmp_path / "retry")
    assert ran.launch.adopted and ran.status.phase is JobPhase.SUCCEEDED and len(k.experiments()) == 1
    assert f"== attempt 1 {STEP}: Running, adopted" in (tmp_path / "retry" / "katib.log").read_text()


def test_the_deadline_deletes_the_experiment(tmp_path: Path) -> None:
    k = Katib()
    k.api.script(STEP, "Running")
    with pytest.raises(LaunchError, match="did not finish within 90s"):
        k.run(tmp_path, timeout_s=60, poll_interval_s=10, deadline_grace_s=30)
    assert k.experiments() == [] and k.api.deletions == [(STEP, "Foreground")]
    assert sum(k.clock.sleeps) == pytest.approx(90) and (tmp_path / "katib.log").exists()


def test_sigterm_while_waiting_deletes_the_experiment(tmp_path: Path) -> None:
    k = Katib()
    k.api.script(STEP, "Running")
    k.clock.on_sleep = lambda n: os.kill(os.getpid(), signal.SIGTERM) if n == 2 else None
    with pytest.raises(Terminated) as err:
        k.run(tmp_path)
    assert err.value.code == 143 and k.experiments() == [] and k.api.deletions == [(STEP, "Foreground")]


def _trial(name: str, created: str, state: str | None, params: dict[str, str], value: str | None) -> dict:
    conditions = [{"type": "Created", "status": "True"}]
    if state:
        conditions.append({"type": state, "status": "True", "message": f"{name} {state}"})
    status: dict = {"conditions": conditions}
    if value is not None:
        status["observation"] = {"metrics": [{"name": "val_loss", "min": value, "max": "9", "latest": "5"}]}
    return {"metadata": {"name": name, "creationTimestamp": created},
            "spec": {"parameterAssignments": [{"name": k, "value": v} for k, v in params.items()]},
            "status": status}


def test_katib_trials_become_typed_optuna_trials_in_creation_order() -> None:
    spec = TuningSpec.model_validate(TUNING)
    p = {"lr": "0.001", "model.hidden": "24", "optimizer": "adam", "batch_size": "32"}
    trials = [
        _trial("t-late", "2026-01-01T00:00:09Z", "Succeeded", {**p, "lr": "0.01"}, "0.2"),
        _trial("t-first", "2026-01-01T00:00:01Z", "Succeeded", p, "0.3"),
        _trial("t-pruned", "2026-01-01T00:00:02Z", "EarlyStopped", p, "0.9"),
        _trial("t-failed", "2026-01-01T00:00:03Z", "Failed", p, None),
        _trial("t-nometric", "2026-01-01T00:00:04Z", "MetricsUnavailable", p, None),
        _trial("t-killed", "2026-01-01T00:00:05Z", "Killed", p, None),
        _trial("t-running", "2026-01-01T00:00:06Z", None, p, None),
        _trial("t-silent", "2026-01-01T00:00:07Z", "Succeeded", p, None),
    ]
    frozen = frozen_trials(trials, spec)
    assert [t.user_attrs["trial"]["name"] for t in frozen] == [
        "t-first", "t-pruned", "t-failed", "t-nometric", "t-killed", "t-running", "t-silent", "t-late"]
    assert [t.number for t in frozen] == list(range(8))
    assert [t.state for t in frozen] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.FAIL,
                                         TrialState.FAIL, TrialState.RUNNING, TrialState.FAIL, TrialState.COMPLETE]
    assert frozen[0].params == {"lr": 0.001, "model.hidden": 24, "optimizer": "adam", "batch_size": 32}
    assert type(frozen[0].params["model.hidden"]) is int and type(frozen[0].params["batch_size"]) is int
    assert frozen[0].value == 0.3 and frozen[7].value == 0.2  # the objective's strategy: min for minimize
    assert frozen[6].user_attrs["result"]["message"] == "succeeded but reported no 'val_loss'"
    table = trials_table(spec, frozen)
    assert table["state"].to_list() == ["Succeeded", "EarlyStopped", "Failed", "Failed", "Killed", "Running",
                                        "Failed", "Succeeded"]
    assert table["value"].to_list()[:2] == [0.3, 0.9] and table["params_model.hidden"].dtype.is_integer()
    assert TrialOutcome(table["state"][4]) is TrialOutcome.KILLED


@pytest.mark.parametrize("type_,reason,expected", [
    ("Succeeded", "ExperimentGoalReached", StopReason.GOAL_REACHED),
    ("Succeeded", "ExperimentMaxTrialsReached", StopReason.MAX_TRIALS),
    ("Succeeded", "", StopReason.MAX_TRIALS),
    ("Failed", "ExperimentMaxFailedTrialsReached", StopReason.MAX_FAILED_TRIALS),
    ("Failed", "ExperimentDeadlineExceeded", StopReason.DEADLINE),
    ("Failed", "SomethingElse", StopReason.MAX_FAILED_TRIALS),
])
def test_stop_reason_of_a_finished_experiment(type_: str, reason: str, expected: StopReason) -> None:
    exp = {"status": {"conditions": [{"type": "Running", "status": "False"},
                                     {"type": type_, "status": "True", "reason": reason}]}}
    assert stop_reason(exp) is expected
