"""An in-memory Vertex AI endpoint and Model Registry with Vertex's semantics, as an ``EndpointClient``.

- Deployed model ids are numeric strings Vertex assigns; ``deploy`` returns nothing. A deploy is a long-running
  operation: the model appears in ``list_models()`` (with the traffic split applied) only after ``deploy_reads``
  reads, or fails (``fail_next_deploy``) without appearing; one deploy at a time.
- Traffic splits are validated as Vertex does: integer percentages that sum to 100 (``{}`` only when nothing is
  deployed), keys that are deployed model ids (``"0"`` for the model being deployed); undeploying a model that
  still takes traffic from an endpoint with other models needs a new split. Violations raise
  ``google.api_core.exceptions`` errors (InvalidArgument, NotFound, FailedPrecondition).
- ``predict`` routes each request by the split with a smooth weighted round robin (exact shares, evenly spread)
  and answers like Vertex: the predictions and the ``deployed_model_id`` that served them. Models answer by
  artifact URI (``models``); an exception there is a failed request.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc

from components.serving.canary.vertex import Answer, DeployedModel, ModelInfo
from tests.fakes.faults import Faults

Model = Callable[[list[dict[str, Any]]], list[Any]]


@dataclass
class _Deploy:
    model: str
    split: dict[str, int]
    display_name: str
    reads_left: int
    fails: str | None
    settings: dict[str, Any]


class FakeVertexEndpoint(Faults):
    """One endpoint (``projects/p/locations/us-central1/endpoints/1``) and its project's Model Registry."""

    resource_name = "projects/p/locations/us-central1/endpoints/1"

    def __init__(self, deploy_reads: int = 1) -> None:
        super().__init__()
        self.deploy_reads = deploy_reads
        self.registry: dict[str, ModelInfo] = {}
        self.uploads: list[dict[str, Any]] = []
        self.deployed: list[DeployedModel] = []
        self.settings: dict[str, dict[str, Any]] = {}  # deployed model id -> machine, replicas, ...
        self.split: dict[str, int] = {}
        self.models: dict[str, Model] = {}
        self.answered: Counter[str] = Counter()
        self._labels: dict[str, str] = {}
        self._ids = itertools.count(1001)
        self._model_ids = itertools.count(1)
        self._deploy: _Deploy | None = None
        self._error: str | None = None
        self._fail_next: str | None = None
        self._weights: dict[str, int] = {}

    # ----- fault injection (fail_next and _fault: Faults)
    def fail_next_deploy(self, message: str) -> None:
        """The next deploy operation fails with ``message`` (quota, image pull, health check...)."""
        self._fail_next = message

    # ----- validation
    def _validate(self, split: dict[str, int], ids: set[str]) -> None:
        unknown = set(split) - ids
        if unknown:
            raise gexc.InvalidArgument(f"traffic split names deployed models that do not exist: {sorted(unknown)}")
        if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in split.values()):
            raise gexc.InvalidArgument(f"traffic split percentages must be non-negative integers: {split}")
        if ids and sum(split.values()) != 100:
            raise gexc.InvalidArgument(f"traffic split must sum to 100, got {sum(split.values())}: {split}")
        if not ids and split:
            raise gexc.InvalidArgument("traffic split must be empty when nothing is deployed")

    def _ids_now(self) -> set[str]:
        return {m.id for m in self.deployed}

    # ----- the endpoint
    def list_models(self) -> list[DeployedModel]:
        self._fault("list_models")
        op = self._deploy
        if op is not None:
            op.reads_left -= 1
            if op.reads_left <= 0:
                self._deploy = None
                if op.fails:
                    self._error = op.fails
                else:
                    new = DeployedModel(str(next(self._ids)), op.model, op.display_name)
                    self.deployed.append(new)
                    self.settings[new.id] = op.settings
                    self.split = {(new.id if k == "0" else k): v for k, v in op.split.items() if v}
        return list(self.deployed)

    def traffic_split(self) -> dict[str, int]:
        self._fault("traffic_split")
        return dict(self.split)

    def labels(self) -> dict[str, str]:
        self._fault("labels")
        return dict(self._labels)

    def set_labels(self, labels: dict[str, str]) -> None:
        self._fault("set_labels")
        self._labels = dict(labels)

    def deploy(self, model: str, *, traffic_split: dict[str, int], display_name: str, machine_type: str,
               min_replicas: int, max_replicas: int, service_account: str | None) -> None:
        self._fault("deploy")
        if model not in self.registry:
            raise gexc.NotFound(f"model {model} not found")
        if self._deploy is not None:
            raise gexc.FailedPrecondition("another deploy operation is running on this endpoint")
        self._validate(traffic_split, self._ids_now() | {"0"})
        if min_replicas < 1 or max_replicas < min_replicas:
            raise gexc.InvalidArgument(f"replica counts {min_replicas}..{max_replicas} are invalid")
        fails, self._fail_next, self._error = self._fail_next, None, None
        self._deploy = _Deploy(model, dict(traffic_split), display_name, self.deploy_reads, fails,
                               {"machine_type": machine_type, "min_replicas": min_replicas,
                                "max_replicas": max_replicas, "service_account": service_account})

    def deploy_pending(self) -> bool:
        return self._deploy is not None

    def deploy_error(self) -> str | None:
        return self._error

    def update(self, *, traffic_split: dict[str, int]) -> None:
        self._fault("update")
        self._validate(traffic_split, self._ids_now())
        self.split = {k: v for k, v in traffic_split.items() if v}

    def undeploy(self, deployed_model_id: str, *, traffic_split: dict[str, int] | None = None) -> None:
        self._fault("undeploy")
        self.calls.append(f"undeploy {deployed_model_id}")
        if deployed_model_id not in self._ids_now():
            raise gexc.NotFound(f"deployed model {deployed_model_id} not found on the endpoint")
        rest = self._ids_now() - {deployed_model_id}
        if traffic_split is None:
            if self.split.get(deployed_model_id, 0) and rest:
                raise gexc.FailedPrecondition(f"deployed model {deployed_model_id} takes traffic: give a new "
                                              "traffic split for the models that remain")
            traffic_split = {k: v for k, v in self.split.items() if k != deployed_model_id}
        self._validate(traffic_split, rest)
        self.deployed = [m for m in self.deployed if m.id != deployed_model_id]
        self.split = {k: v for k, v in traffic_split.items() if v}

    def _route(self) -> str:
        """Smooth weighted round robin over the split (nginx's): exact shares, spread evenly."""
        if not self.split:
            raise gexc.FailedPrecondition("the endpoint has no deployed model taking traffic")
        for k in list(self._weights):
            if k not in self.split:
                del self._weights[k]
        for k, v in sorted(self.split.items()):
            self._weights[k] = self._weights.get(k, 0) + v
        chosen = max(sorted(self._weights), key=lambda k: self._weights[k])
        self._weights[chosen] -= sum(self.split.values())
        return chosen

    def predict(self, instances: list[dict[str, Any]]) -> Answer:
        chosen = self._route()
        dm = next(m for m in self.deployed if m.id == chosen)
        self.answered[chosen] += 1
        try:
            predictions = self.models[self.registry[dm.model].artifact_uri](instances)
        except Exception as err:
            raise gexc.InternalServerError(f"deployed model {chosen} failed: {err}") from err
        return Answer(predictions, chosen)

    # ----- the Model Registry
    def find_model(self, labels: dict[str, str]) -> ModelInfo | None:
        found = [m for m in self.registry.values() if labels.items() <= m.labels.items()]
        return found[0] if found else None

    def upload_model(self, *, display_name: str, artifact_uri: str, serving_image: str, command: list[str],
                     args: list[str], predict_route: str, health_route: str, port: int,
                     labels: dict[str, str]) -> ModelInfo:
        self.calls.append("upload_model")
        if not artifact_uri.startswith("gs://"):
            raise gexc.InvalidArgument(f"artifact_uri must be a gs:// URI, got {artifact_uri}")
        name = f"projects/p/locations/us-central1/models/{next(self._model_ids)}"
        info = ModelInfo(name, artifact_uri, dict(labels))
        self.registry[name] = info
        self.uploads.append({"display_name": display_name, "artifact_uri": artifact_uri, "image": serving_image,
                             "command": command, "args": args, "predict_route": predict_route,
                             "health_route": health_route, "port": port, "labels": dict(labels)})
        return info

    def model(self, resource_name: str) -> ModelInfo:
        if resource_name not in self.registry:
            raise gexc.NotFound(f"model {resource_name} not found")
        return self.registry[resource_name]
