"""Fake controllers on the fake apiserver: what the Kubeflow training operator and Katib would do to the objects
the catalog creates, so steps can be driven through their production path (the step functions and wrappers) with
only the cluster faked.

``TrainingOperator`` advances each PyTorchJob one phase per read (Created → Running → one epoch per read →
Succeeded), writing the trainer's files to the job's ``--output-uri`` as the trainer would (``metrics.jsonl`` per
epoch, then ``final_metrics.json`` and ``model/``); ``objective(trainer_config)`` gives the learning curve, or
raises ``JobFails`` to fail the job. ``KatibController`` finishes an Experiment with Trials whose observations
come from the same kind of objective.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from components._core.artifacts import write_json, write_text
from components.training.launch import FINAL_METRICS_FILE, METRICS_FILE, MODEL_DIR, output_file
from tests.fakes.k8s import FakeCustomObjectsApi

Curve = Sequence[float]


class JobFails(RuntimeError):
    """Raised by an objective: the job fails (after ``epochs`` epochs) with this message."""

    def __init__(self, message: str, epochs: int = 0) -> None:
        super().__init__(message)
        self.epochs = epochs


def trainer_args(job: dict[str, Any]) -> dict[str, str]:
    """``--config`` / ``--data-uri`` / ``--output-uri`` of a PyTorchJob's master container."""
    command = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["command"]
    return {command[i][2:]: command[i + 1] for i in range(len(command) - 1) if command[i].startswith("--")}


def write_trainer_outputs(output_uri: str, curve: Curve, metric: str = "val_auc", test_auc: float = 0.9) -> None:
    """The files a finished trainer leaves: metrics per epoch, final metrics, a model with its card."""
    lines = "".join(json.dumps({"epoch": e + 1, metric: v}) + "\n" for e, v in enumerate(curve))
    write_text(lines, output_file(output_uri, METRICS_FILE))
    write_json({metric: curve[-1], "test_auc": test_auc, "val_auc": curve[-1] if metric == "val_auc" else 0.5},
               output_file(output_uri, FINAL_METRICS_FILE))
    write_json({"features": [{"name": "f1"}], "metrics": {"test_auc": test_auc}},
               output_file(output_uri, f"{MODEL_DIR}/model_card.json"))
    write_text("weights", output_file(output_uri, f"{MODEL_DIR}/model.safetensors"))


class TrainingOperator:
    """Plays the training operator: every read of a PyTorchJob moves it on (see the module docstring)."""

    PLURAL = "pytorchjobs"

    def __init__(self, api: FakeCustomObjectsApi, objective: Callable[[dict[str, Any]], Curve] | None = None,
                 metric: str = "val_auc") -> None:
        self.api, self.metric = api, metric
        self.objective = objective or (lambda cfg: [0.6, 0.7, 0.8])
        self.epochs: dict[str, int] = {}
        self.reads: dict[str, int] = {}
        self._get = api.get_namespaced_custom_object
        api.get_namespaced_custom_object = self._read  # type: ignore[method-assign]

    def live(self) -> list[str]:
        """Names of stored PyTorchJobs with no terminal condition."""
        done = {"Succeeded", "Failed"}
        return [o["metadata"]["name"] for o in self.api.stored(self.PLURAL)
                if not any(c["type"] in done and c["status"] == "True"
                           for c in (o.get("status") or {}).get("conditions", []))]

    def _read(self, group: str, version: str, namespace: str, plural: str, name: str, **kw: Any) -> dict[str, Any]:
        obj = self._get(group, version, namespace, plural, name, **kw)
        if plural == self.PLURAL and name in self.live() and not obj["metadata"].get("deletionTimestamp"):
            self._advance(obj, namespace)
            obj = self._get(group, version, namespace, plural, name, **kw)
        return obj

    def _advance(self, obj: dict[str, Any], namespace: str) -> None:
        name = obj["metadata"]["name"]
        self.reads[name] = self.reads.get(name, 0) + 1
        if self.reads[name] == 1:
            self.api.set_condition(self.PLURAL, name, "Created", namespace=namespace)
            return
        args = trainer_args(obj)
        try:
            curve, failure = list(self.objective(json.loads(args["config"]))), None
        except JobFails as err:
            curve, failure = [0.5] * err.epochs, err
        done = self.epochs.get(name, 0)
        if done == 0:
            self.api.set_condition(self.PLURAL, name, "Running", namespace=namespace)
        if done < len(curve):
            self.epochs[name] = done + 1
            lines = "".join(json.dumps({"epoch": e + 1, self.metric: v}) + "\n" for e, v in enumerate(curve[:done + 1]))
            write_text(lines, output_file(args["output-uri"], METRICS_FILE))
            return
        if failure is not None:
            self.api.set_condition(self.PLURAL, name, "Failed", "True", "PyTorchJobFailed", str(failure),
                                   namespace=namespace)
            return
        write_trainer_outputs(args["output-uri"], curve, self.metric)
        self.api.set_condition(self.PLURAL, name, "Succeeded", "True", "PyTorchJobSucceeded",
                               f"PyTorchJob {name} is successfully completed.", namespace=namespace)


class KatibController:
    """Plays Katib: on the second read of an Experiment it has run ``trials`` Trials, each with the parameters
    ``assign(i)`` and the objective's observation, and marks the Experiment Succeeded (or ``Failed`` when
    ``fail`` is set)."""

    def __init__(self, api: FakeCustomObjectsApi, assign: Callable[[int], dict[str, str]],
                 objective: Callable[[dict[str, str]], float], *, trials: int = 3, fail: str | None = None) -> None:
        self.api, self.assign, self.objective, self.trials, self.fail = api, assign, objective, trials, fail
        self.reads: dict[str, int] = {}
        self._get = api.get_namespaced_custom_object
        api.get_namespaced_custom_object = self._read  # type: ignore[method-assign]

    def _read(self, group: str, version: str, namespace: str, plural: str, name: str, **kw: Any) -> dict[str, Any]:
        obj = self._get(group, version, namespace, plural, name, **kw)
        if plural != "experiments":
            return obj
        self.reads[name] = self.reads.get(name, 0) + 1
        if self.reads[name] == 1:
            self.api.set_condition("experiments", name, "Created", namespace=namespace)
            self.api.set_condition("experiments", name, "Running", namespace=namespace)
        elif self.reads[name] == 2:
            metric = obj["spec"]["objective"]["objectiveMetricName"]
            for i in range(self.trials):
                params = self.assign(i)
                value = self.objective(params)
                trial = {
                    "apiVersion": "kubeflow.org/v1beta1", "kind": "Trial",
                    "metadata": {"name": f"{name}-t{i}", "labels": {"katib.kubeflow.org/experiment": name}},
                    "spec": {"parameterAssignments": [{"name": k, "value": v} for k, v in params.items()]},
                }
                self.api.create_namespaced_custom_object("kubeflow.org", "v1beta1", namespace, "trials", trial)
                self.api.patch_namespaced_custom_object_status(
                    "kubeflow.org", "v1beta1", namespace, "trials", trial["metadata"]["name"],
                    {"status": {"conditions": [{"type": "Succeeded", "status": "True"}],
                                "observation": {"metrics": [{"name": metric, "min": str(value), "max": str(value),
                                                             "latest": str(value)}]}}})
            if self.fail:
                self.api.set_condition("experiments", name, "Failed", "True", "ExperimentMaxFailedTrialsReached",
                                       self.fail, namespace=namespace)
            else:
                self.api.set_condition("experiments", name, "Succeeded", "True", "ExperimentMaxTrialsReached",
                                       "Experiment has succeeded because max trial count has reached",
                                       namespace=namespace)
        return self._get(group, version, namespace, plural, name, **kw)
