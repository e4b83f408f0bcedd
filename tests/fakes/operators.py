"""Fake controllers on the fake apiserver: what the Kubeflow training operator and Katib would do to the objects
the catalog creates, so steps can be driven through their production path (the step functions and wrappers) with
only the cluster faked.

``TrainingOperator`` advances each PyTorchJob one phase per read (Created → Running → one epoch per read →
Succeeded), writing the trainer's files to the job's ``--output-uri`` as the trainer would (``metrics.jsonl`` per
epoch, then ``final_metrics.json`` and ``model/``: a real tiny model, trained once per session on
``tiny_training_set()``, so the step's monitoring bundle can score with it); ``objective(trainer_config)`` gives
the learning curve, or raises ``JobFails`` to fail the job. ``KatibController`` finishes an Experiment with
Trials whose observations come from the same kind of objective. ``Cluster`` bundles the fake apiserver and these
controllers as a step's cluster; ``VertexTrainer`` is a fake Vertex client whose CustomJobs run the trainer the
same way.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import polars as pl

from components._core.artifacts import open_atomic, write_json, write_parquet, write_text
from components.data.breast_cancer import breast_cancer_events
from components.training.launch import FINAL_METRICS_FILE, METRICS_FILE, MODEL_DIR, output_file
from components.training.vertex import JobInfo
from tests.fakes.clock import ManualClock
from tests.fakes.k8s import FakeCoreV1Api, FakeCustomObjectsApi
from tests.fakes.vertex import TERMINAL as VERTEX_TERMINAL
from tests.fakes.vertex import FakeVertexJobClient

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


def tiny_training_set() -> pl.DataFrame:
    """The rows the fake trainers' model is trained on (write them where a step reads its training set)."""
    return breast_cancer_events().head(120)


@functools.cache
def tiny_model() -> Path:
    """A real model folder (safetensors + card), trained once per session by the trainer itself."""
    from components.training.config import TrainerConfig
    from components.training.distributed import DistEnv
    from components.training.trainer import train

    root = Path(tempfile.mkdtemp(prefix="fake-trainer-"))
    tiny_training_set().write_parquet(root / "train.parquet")
    train(TrainerConfig.parse({"hidden_sizes": [4], "max_epochs": 1, "keep_checkpoints": 1}),
          str(root / "train.parquet"), str(root / "run"), DistEnv())
    return root / "run" / "model"


def write_tiny_training_set(uri: str) -> None:
    """``tiny_training_set()`` as Parquet at ``uri`` (any fsspec URI)."""
    write_parquet(tiny_training_set(), uri)


def write_trainer_outputs(output_uri: str, curve: Curve, metric: str = "val_auc", test_auc: float = 0.9) -> None:
    """The files a finished trainer leaves: metrics per epoch, final metrics, a model with its card."""
    lines = "".join(json.dumps({"epoch": e + 1, metric: v}) + "\n" for e, v in enumerate(curve))
    write_text(lines, output_file(output_uri, METRICS_FILE))
    write_json({metric: curve[-1], "test_auc": test_auc, "val_auc": curve[-1] if metric == "val_auc" else 0.5},
               output_file(output_uri, FINAL_METRICS_FILE))
    model = tiny_model()
    card = json.loads((model / "model_card.json").read_text())
    write_json({**card, "metrics": {**card["metrics"], "test_auc": test_auc}},
               output_file(output_uri, f"{MODEL_DIR}/model_card.json"))
    with open_atomic(output_file(output_uri, f"{MODEL_DIR}/model.safetensors"), "wb") as fh:
        fh.write((model / "model.safetensors").read_bytes())


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
    """Plays Katib: on the ``finish_on_read``-th read (default the second) of an Experiment it has run ``trials``
    Trials, each with the parameters ``assign(i)`` and the objective's observation, and marks the Experiment
    Succeeded (or ``Failed`` when ``fail`` is set); the reads before see it running."""

    def __init__(self, api: FakeCustomObjectsApi, assign: Callable[[int], dict[str, str]],
                 objective: Callable[[dict[str, str]], float], *, trials: int = 3, fail: str | None = None,
                 finish_on_read: int = 2) -> None:
        if finish_on_read < 2:
            raise ValueError("finish_on_read must be >= 2 (the first read sees the Experiment created)")
        self.api, self.assign, self.objective, self.trials, self.fail = api, assign, objective, trials, fail
        self.finish_on_read = finish_on_read
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
        elif self.reads[name] == self.finish_on_read:
            metric = obj["spec"]["objective"]["objectiveMetricName"]
            for i in range(self.trials):
                params = self.assign(i)
                value = self.objective(params)
                trial: dict[str, Any] = {
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


class Cluster:
    """The fake apiserver with the training operator on it, as a step's cluster: ``install`` makes it what
    ``components._core.k8s.default_clients`` returns (where the production code makes its clients). Records every
    create with the PyTorchJobs live at that moment (``created``) and the clock time of every successful read of a
    PyTorchJob (``reads``); ``katib(...)`` adds a ``KatibController``."""

    def __init__(self, objective: Callable[[dict[str, Any]], Curve] | None = None, metric: str = "val_auc",
                 clock: ManualClock | None = None) -> None:
        self.core = FakeCoreV1Api()
        self.api = FakeCustomObjectsApi(self.core)
        self.clock = clock or ManualClock()
        self.operator = TrainingOperator(self.api, objective, metric)
        self.created: list[tuple[str, list[str]]] = []
        self.reads: list[tuple[str, float]] = []
        self.controller: KatibController | None = None
        create, get = self.api.create_namespaced_custom_object, self.api.get_namespaced_custom_object

        def recording_create(*args: Any, **kwargs: Any) -> dict[str, Any]:
            body = args[-1] if args else kwargs["body"]
            self.created.append((body["metadata"]["name"], self.operator.live()))
            return create(*args, **kwargs)

        def recording_get(group: str, version: str, namespace: str, plural: str, name: str, **kw: Any
                          ) -> dict[str, Any]:
            obj = get(group, version, namespace, plural, name, **kw)
            if plural == TrainingOperator.PLURAL:
                self.reads.append((name, self.clock.t))
            return obj

        self.api.create_namespaced_custom_object = recording_create  # type: ignore[method-assign]
        self.api.get_namespaced_custom_object = recording_get  # type: ignore[method-assign]

    def install(self, monkeypatch: Any) -> Self:
        """Make this the cluster of the step's kubeconfig (``monkeypatch`` is pytest's fixture)."""
        from components._core import k8s

        monkeypatch.setattr(k8s, "default_clients", lambda: (self.api, self.core))
        return self

    def katib(self, assign: Callable[[int], dict[str, str]], objective: Callable[[dict[str, str]], float], *,
              trials: int = 3, fail: str | None = None, finish_on_read: int = 2) -> KatibController:
        """Play Katib too (see ``KatibController``)."""
        self.controller = KatibController(self.api, assign, objective, trials=trials, fail=fail,
                                          finish_on_read=finish_on_read)
        return self.controller

    def jobs(self) -> list[dict[str, Any]]:
        """Stored PyTorchJobs."""
        return self.api.stored(TrainingOperator.PLURAL)

    def read_times(self, name: str) -> list[float]:
        """Clock times at which the PyTorchJob ``name`` was read."""
        return [t for n, t in self.reads if n == name]


class VertexTrainer(FakeVertexJobClient):
    """A fake Vertex client whose CustomJobs run the trainer: each read of a live job moves it on (queued, then
    running with one epoch written per read, then succeeded with the trainer's final files, or failed when the
    objective raises ``JobFails``), writing to the job's ``--output-uri`` like ``TrainingOperator``."""

    def __init__(self, objective: Callable[[dict[str, Any]], Curve] | None = None, metric: str = "val_auc") -> None:
        super().__init__()
        self.objective = objective or (lambda cfg: [0.6, 0.7, 0.8])
        self.metric = metric
        self.epochs: dict[str, int] = {}
        self.reads: dict[str, int] = {}

    def live(self) -> list[str]:
        """Display names of jobs that have not ended."""
        return [j.display_name for j in self.jobs.values() if j.state not in VERTEX_TERMINAL]

    def get(self, resource_name: str) -> JobInfo:
        self._fault("get")
        job = self.jobs[resource_name]
        if job.state == "JOB_STATE_CANCELLING":
            job.state = "JOB_STATE_CANCELLED"
        elif job.state not in VERTEX_TERMINAL:
            self._advance(resource_name, job)
        return JobInfo(job.state, job.error)

    def _advance(self, resource_name: str, job: Any) -> None:
        self.reads[resource_name] = self.reads.get(resource_name, 0) + 1
        if self.reads[resource_name] == 1:
            job.state = "JOB_STATE_PENDING"
            return
        command = job.pools[0]["container_spec"]["command"]
        args = {command[i][2:]: command[i + 1] for i in range(len(command) - 1) if command[i].startswith("--")}
        try:
            curve, failure = list(self.objective(json.loads(args["config"]))), None
        except JobFails as err:
            curve, failure = [0.5] * err.epochs, err
        done = self.epochs.get(resource_name, 0)
        job.state = "JOB_STATE_RUNNING"
        if done < len(curve):
            self.epochs[resource_name] = done + 1
            lines = "".join(json.dumps({"epoch": e + 1, self.metric: v}) + "\n" for e, v in enumerate(curve[:done + 1]))
            write_text(lines, output_file(args["output-uri"], METRICS_FILE))
        elif failure is not None:
            job.state = "JOB_STATE_FAILED"
            job.error = f"The replica workerpool0-0 exited with a non-zero status: {failure}"
        else:
            write_trainer_outputs(args["output-uri"], curve, self.metric)
            job.state = "JOB_STATE_SUCCEEDED"
