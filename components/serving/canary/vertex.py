"""Vertex AI serving backend: the candidate deployed to the service's endpoint beside the stable model, with a
traffic split, through an injected endpoint client (``EndpointClient``; ``AiplatformEndpoint`` is the thin
adapter over ``google.cloud.aiplatform``, imported on first use).

- The candidate is uploaded to the Model Registry once (labels ``kfp-catalog-service`` and
  ``kfp-catalog-model-version``; found again by them) with the catalog's serving image running
  ``components.serving.server`` on ``$(AIP_STORAGE_URI)``: v1 predict route, the model's own readiness as health
  route.
- deploy: ``Endpoint.deploy(model, traffic_split={"0": N, stable_id: 100 - N})`` ("0" is the model being
  deployed; ``{"0": 100}`` on a first deployment). ``deploy`` returns nothing, so the new deployed model's id is
  found with ``list_models()``; the readiness job succeeds once it is listed with the split asked for, and fails
  when the deploy operation failed.
- promote: ``update(traffic_split={candidate_id: 100})``, the endpoint label ``kfp-catalog-stable`` set to the
  candidate's id (so a first deployment not yet promoted is told apart from a promoted one), then the old stable
  model is undeployed (best effort).
- roll back: ``undeploy(deployed_model_id=candidate_id, traffic_split={stable_id: 100})`` (``{}`` when nothing
  else is deployed).
- Attribution: Vertex routes each request by the split and ``Prediction.deployed_model_id`` says who answered.
  Vertex cannot address one deployed model of a shared endpoint directly, so ``predict`` re-sends a request the
  other model answered (bounded, counted in ``attribution``), and ``observed_traffic`` counts who answered the
  probe requests.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, TypeVar

from components._core.images import image
from components._core.jobs import JobPhase, JobStatus, RunningJob, WaitPolicy, call_with_retry
from components._core.waiting import Clock
from components.serving.canary.backend import RolloutFailure, ServingBackend, Which, record_seen
from components.serving.canary.kserve import LineageReader, probabilities, read_lineage
from components.serving.target import DeployConfig, Served, VertexTarget
from components.training.vertex import transient_google_error

log = logging.getLogger(__name__)
T = TypeVar("T")
STABLE_LABEL = "kfp-catalog-stable"
SERVICE_LABEL = "kfp-catalog-service"
VERSION_LABEL = "kfp-catalog-model-version"
HTTP_PORT = 8080
MAX_RESENDS = 200  # most requests sent to reach one model through the split
ROLLBACK_WAIT_S = 120.0  # how long a rollback waits for a deploy still running to land, so it can be undeployed


@dataclass(frozen=True)
class DeployedModel:
    """One model deployed on the endpoint."""

    id: str
    model: str  # the Model Registry resource name
    display_name: str = ""


@dataclass(frozen=True)
class ModelInfo:
    """A model in the Model Registry."""

    resource_name: str
    artifact_uri: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """A prediction response: what was predicted and which deployed model answered."""

    predictions: list[Any]
    deployed_model_id: str


class EndpointClient(Protocol):
    """What the backend needs from one Vertex endpoint and the Model Registry."""

    @property
    def resource_name(self) -> str: ...
    def list_models(self) -> list[DeployedModel]: ...
    def traffic_split(self) -> dict[str, int]: ...
    def labels(self) -> dict[str, str]: ...
    def set_labels(self, labels: dict[str, str]) -> None: ...
    def deploy(self, model: str, *, traffic_split: dict[str, int], display_name: str, machine_type: str,
               min_replicas: int, max_replicas: int, service_account: str | None) -> None: ...
    def deploy_pending(self) -> bool: ...
    def deploy_error(self) -> str | None: ...
    def update(self, *, traffic_split: dict[str, int]) -> None: ...
    def undeploy(self, deployed_model_id: str, *, traffic_split: dict[str, int] | None = None) -> None: ...
    def predict(self, instances: list[dict[str, Any]]) -> Answer: ...
    def find_model(self, labels: dict[str, str]) -> ModelInfo | None: ...
    def upload_model(self, *, display_name: str, artifact_uri: str, serving_image: str, command: list[str],
                     args: list[str], predict_route: str, health_route: str, port: int,
                     labels: dict[str, str]) -> ModelInfo: ...
    def model(self, resource_name: str) -> ModelInfo: ...


@dataclass(frozen=True)
class _Expectation:
    model: str
    before: frozenset[str]
    percent: int
    stable_id: str | None
    adopted: str | None = None  # the candidate was already deployed (a retried step)


class VertexReadiness(RunningJob):
    """The candidate's deployment as a ``RunningJob``: succeeded once the endpoint lists it with the split asked
    for, failed when the deploy operation failed; cancel = roll back."""

    def __init__(self, backend: VertexServing, exp: _Expectation, policy: WaitPolicy) -> None:
        self.backend, self.exp, self._policy = backend, exp, policy
        self.name = f"Vertex endpoint {backend.target.endpoint} (candidate at {exp.percent}%)"

    @property
    def policy(self) -> WaitPolicy:
        return self._policy

    def status(self) -> JobStatus:
        client, exp = self.backend.client, self.exp
        error = client.deploy_error()
        if error:
            return self.backend.seen(JobPhase.FAILED, f"deploy failed: {error}")
        models = client.list_models()
        new = [m for m in models if m.id == exp.adopted or (m.model == exp.model and m.id not in exp.before)]
        if not new:
            return self.backend.seen(JobPhase.PENDING, "the candidate is not deployed yet", models)
        cand, split = new[0].id, client.traffic_split()
        self.backend.candidate_id = cand
        want = {cand: exp.percent, **({exp.stable_id: 100 - exp.percent} if exp.stable_id else {})}
        if any(split.get(k, 0) != v for k, v in want.items()):
            return self.backend.seen(JobPhase.PENDING, f"traffic split is {split}, want {want}", models, split)
        return self.backend.seen(JobPhase.SUCCEEDED, f"deployed model {cand} takes {exp.percent}%", models, split)

    def cancel(self) -> None:
        self.backend.rollback()

    def logs(self) -> str:
        return ""  # Vertex keeps the serving container's logs in Cloud Logging


class VertexServing(ServingBackend):
    """The service's Vertex endpoint (see the module docstring)."""

    def __init__(self, cfg: DeployConfig, *, endpoint: EndpointClient | None = None, clock: Clock | None = None,
                 run_id: str = "", task: str = "", lineage_reader: LineageReader | None = None) -> None:
        if cfg.vertex is None:
            raise ValueError("vertex (project, location, endpoint) is required for backend=vertex")
        self.cfg, self.target, self.service = cfg, cfg.vertex, cfg.service
        self.run_id, self.task, self._clock = run_id, task, clock
        self._client, self._lineage = endpoint, lineage_reader or read_lineage
        self.candidate_id: str | None = None
        self.stable_id: str | None = None
        self.attribution: Counter[str] = Counter()  # deployed model id -> answers received
        self._exp: _Expectation | None = None
        self._seen: list[dict[str, Any]] = []

    @classmethod
    def from_config(cls, cfg: DeployConfig, **clients: Any) -> Self:
        """Clients: ``endpoint`` (an ``EndpointClient``), ``clock``, ``run_id``, ``task``, ``lineage_reader``."""
        return cls(cfg, **clients)

    @property
    def client(self) -> EndpointClient:
        """The endpoint client (the aiplatform adapter unless injected)."""
        if self._client is None:
            self._client = AiplatformEndpoint(self.target)
        return self._client

    @property
    def policy(self) -> WaitPolicy:
        """Readiness waits and API calls: 429 / 5xx / connection errors retried with backoff."""
        return self.target.wait.policy(self.cfg.readiness_timeout_s, transient_google_error)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """An idempotent endpoint call, transient errors retried (a deploy or a prediction is never retried)."""
        return call_with_retry(fn, self.policy, what=f"{what} on {self.target.endpoint}",
                               clock=self._clock)

    # ----- reading
    def note(self, models: list[DeployedModel] | None = None, split: dict[str, int] | None = None,
             assessment: str = "") -> dict[str, Any]:
        """Record what the endpoint showed (consecutive equal reads are counted, not repeated)."""
        entry: dict[str, Any] = {}
        if models is not None:
            entry["deployed_models"] = [{"id": m.id, "display_name": m.display_name} for m in models]
        if split is not None:
            entry["traffic_split"] = dict(split)
        if assessment:
            entry["assessment"] = assessment
        record_seen(self._seen, entry)
        return entry

    def seen(self, phase: JobPhase, why: str, models: list[DeployedModel] | None = None,
             split: dict[str, int] | None = None) -> JobStatus:
        """Record a readiness read and return it as a ``JobStatus``."""
        return JobStatus(phase, why, self.note(models, split, f"{phase.value}: {why}"))

    def statuses(self) -> list[dict[str, Any]]:
        return [dict(e) for e in self._seen]

    def endpoint(self) -> str:
        """The endpoint's predict URL."""
        return f"https://{self.target.location}-aiplatform.googleapis.com/v1/{self.client.resource_name}:predict"

    def _state(self) -> tuple[DeployedModel | None, DeployedModel | None, dict[str, int]]:
        """(stable, canary, split): the stable model is the one the endpoint label names (else a model the
        catalog did not deploy taking the most traffic); the canary is another of the catalog's models taking
        traffic, or any of them while nothing is stable yet (a first deployment not yet promoted)."""
        client = self.client
        models = self._call("list models", client.list_models)
        split, labels = self._call("read the split", client.traffic_split), self._call("read labels", client.labels)
        by_id = {m.id: m for m in models}
        stable = by_id.get(labels.get(STABLE_LABEL, ""))
        ours = [m for m in models if m.display_name.startswith(f"{self.service}-")]
        if stable is None:
            foreign = sorted((m for m in models if m not in ours), key=lambda m: -split.get(m.id, 0))
            stable = foreign[0] if foreign else None
        canaries = [m for m in ours if m != stable and (stable is None or split.get(m.id, 0) > 0)]
        canary = max(canaries, key=lambda m: split.get(m.id, 0)) if canaries else None
        self.note(models, split)
        return stable, canary, split

    def _ref(self, deployed: DeployedModel) -> tuple[str, str]:
        """(artifact URI, model version) of a deployed model, from its Model Registry entry."""
        info = self._call("read a model", lambda: self.client.model(deployed.model))
        return info.artifact_uri, info.labels.get(VERSION_LABEL) or deployed.display_name.removeprefix(
            f"{self.service}-")

    def _served(self, deployed: DeployedModel | None) -> Served | None:
        if deployed is None:
            return None
        uri, version = self._ref(deployed)
        return Served(uri, version, self._lineage(uri, version))

    def stable(self) -> Served | None:
        stable, _, _ = self._state()
        self.stable_id = stable.id if stable else None
        return self._served(stable)

    def canary(self) -> Served | None:
        _, canary, _ = self._state()
        return self._served(canary)

    # ----- deploying
    def _registered(self, candidate: Served) -> ModelInfo:
        labels = {SERVICE_LABEL: self.service, VERSION_LABEL: candidate.version}
        found = self._call("find a model", lambda: self.client.find_model(labels))
        if found is not None:
            return found
        route = f"/v1/models/{self.service}:predict"
        return self.client.upload_model(
            display_name=f"{self.service}-{candidate.version}", artifact_uri=candidate.model_uri,
            serving_image=self.target.serving_image or image("serving"),
            command=["python", "-m", "components.serving.server"],
            args=[f"--model_name={self.service}", "--model_dir=$(AIP_STORAGE_URI)", f"--http_port={HTTP_PORT}"],
            predict_route=route, health_route=f"/v2/models/{self.service}/ready", port=HTTP_PORT, labels=labels)

    def deploy_canary(self, candidate: Served, percent: int) -> RunningJob:
        stable, canary, _ = self._state()
        self.stable_id = stable.id if stable else None
        info = self._registered(candidate)
        models = self._call("list models", self.client.list_models)
        mine = next((m for m in models if m.model == info.resource_name and m.id != self.stable_id), None)
        percent = percent if stable is not None else 100
        if mine is not None:  # a retried step: the candidate is deployed already
            self.candidate_id = mine.id
        else:
            if canary is not None:
                raise RolloutFailure(f"deployed model {canary.id} is a canary already; roll it back first")
            want = {"0": percent, **({stable.id: 100 - percent} if stable else {})}
            self.client.deploy(info.resource_name, traffic_split=want,
                               display_name=f"{self.service}-{candidate.version}",
                               machine_type=self.target.machine_type, min_replicas=self.target.min_replicas,
                               max_replicas=max(self.target.max_replicas, self.target.min_replicas),
                               service_account=self.target.service_account)
        exp = _Expectation(info.resource_name, frozenset(m.id for m in models), percent, self.stable_id,
                           mine.id if mine else None)
        self._exp = exp
        return VertexReadiness(self, exp, self.policy)

    def promote(self) -> None:
        cand = self.candidate_id or (self._state()[1] or DeployedModel("", "")).id
        if not cand:
            raise RolloutFailure("nothing to promote: no candidate is deployed")
        self._call("move traffic", lambda: self.client.update(traffic_split={cand: 100}))
        labels = self._call("read labels", self.client.labels)
        self._call("label the stable model", lambda: self.client.set_labels({**labels, STABLE_LABEL: cand}))
        for m in self._call("list models", self.client.list_models):
            if m.id != cand:
                try:
                    self._undeploy(m.id, {cand: 100})
                except Exception as err:  # the promotion stands; an idle old model is only a cost
                    log.warning("could not undeploy the old model %s after promoting %s: %s", m.id, cand, err)
        self.stable_id, self.candidate_id, self._exp = cand, None, None

    def _undeploy(self, model_id: str, split: dict[str, int]) -> None:
        """Undeploy ``model_id`` (transient errors retried; gone already counts as done)."""
        def undeploy() -> None:
            from google.api_core import exceptions as gexc

            try:
                self.client.undeploy(model_id, traffic_split=split)
            except gexc.NotFound:  # an earlier try landed before its answer was lost
                log.info("deployed model %s is gone already", model_id)

        self._call(f"undeploy {model_id}", undeploy)

    def _landed(self) -> str | None:
        """The id of the candidate this backend deployed, once the endpoint lists it; a deploy still running is
        waited for (up to ``ROLLBACK_WAIT_S``), since it would otherwise land later and take its share."""
        exp, clock = self._exp, self._clock or Clock()
        if self.candidate_id is not None or exp is None:
            return self.candidate_id
        started = clock.now()
        while True:
            models = self._call("list models", self.client.list_models)
            new = [m for m in models if m.model == exp.model and m.id not in exp.before]
            if new:
                return new[0].id
            if not self.client.deploy_pending():
                return None
            if clock.now() - started >= ROLLBACK_WAIT_S:
                raise RolloutFailure(f"the candidate's deploy on {self.target.endpoint} is still running after "
                                     f"{ROLLBACK_WAIT_S:.0f}s; undeploy it once it lands")
            log.info("rollback: waiting for the running deploy to land before undeploying it")
            clock.sleep(self.target.wait.poll_interval_s)

    def rollback(self) -> None:
        stable, canary, _ = self._state()
        cand = self._landed() or (canary.id if canary else None)
        deployed = {m.id for m in self._call("list models", self.client.list_models)}
        if cand is None or cand not in deployed:
            return
        keep = self.stable_id if self.stable_id in deployed else (stable.id if stable else None)
        self._undeploy(cand, {keep: 100} if keep and keep != cand else {})
        log.info("rolled back deployed model %s on %s", cand, self.target.endpoint)
        self.candidate_id, self._exp = None, None

    # ----- traffic
    def predict(self, which: Which, rows: Sequence[dict[str, Any]]) -> list[float]:
        target = self.candidate_id if which == "candidate" else self.stable_id
        if target is None:
            raise RolloutFailure(f"no {which} model is deployed")
        share = self._call("read the split", self.client.traffic_split).get(target, 0)
        if share <= 0:
            raise RolloutFailure(f"the {which} model takes no traffic: Vertex cannot send it a request")
        tries = min(MAX_RESENDS, math.ceil(100 / share) * 10)
        for _ in range(tries):
            answer = self.client.predict(list(rows))
            self.attribution[answer.deployed_model_id] += 1
            if answer.deployed_model_id == target:
                return probabilities({"predictions": answer.predictions}, len(rows))
        raise RolloutFailure(f"{tries} requests, none answered by the {which} model {target}")

    def observed_traffic(self, probe: Sequence[dict[str, Any]]) -> dict[str, float]:
        """Shares of ``probe`` one-row requests by the model that answered (the endpoint's split when there is
        no probe), by model version."""
        versions = {m.id: self._ref(m)[1] for m in self._call("list models", self.client.list_models)}
        if probe:
            counts: Counter[str] = Counter()
            for row in probe:
                answer = self.client.predict([row])
                self.attribution[answer.deployed_model_id] += 1
                counts[answer.deployed_model_id] += 1
            total = sum(counts.values())
            shares = {versions.get(k, k): n / total for k, n in counts.items()}
        else:
            split = self._call("read the split", self.client.traffic_split)
            shares = {versions.get(k, k): v / 100 for k, v in split.items() if v}
        log.info("observed traffic on %s: %s", self.target.endpoint, shares)
        return shares


class AiplatformEndpoint:
    """The thin ``EndpointClient`` over ``google.cloud.aiplatform`` (needs the network and credentials, so the
    tests use ``tests.fakes.vertex_endpoint`` instead). The endpoint is taken by id, or by display name (created
    when missing). ``deploy`` runs Vertex's blocking deploy in a thread and returns at once; its error, if any, is
    kept for ``deploy_error``."""

    def __init__(self, target: VertexTarget) -> None:
        self.target = target
        self._error: str | None = None
        self._thread: threading.Thread | None = None

    @functools.cached_property
    def aiplatform(self) -> Any:
        from google.cloud import aiplatform

        aiplatform.init(project=self.target.project, location=self.target.location)
        return aiplatform

    @functools.cached_property
    def resource_name(self) -> str:
        ap, name = self.aiplatform, self.target.endpoint
        if name.isdigit():
            return str(ap.Endpoint(name).resource_name)
        found = ap.Endpoint.list(filter=f'display_name="{name}"')
        return str((found[0] if found else ap.Endpoint.create(display_name=name)).resource_name)

    def _endpoint(self) -> Any:
        return self.aiplatform.Endpoint(self.resource_name)  # fresh: the SDK caches the resource

    def list_models(self) -> list[DeployedModel]:
        return [DeployedModel(str(m.id), str(m.model), str(m.display_name)) for m in self._endpoint().list_models()]

    def traffic_split(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in dict(self._endpoint().traffic_split).items()}

    def labels(self) -> dict[str, str]:
        return dict(self._endpoint().labels or {})

    def set_labels(self, labels: dict[str, str]) -> None:
        self._endpoint().update(labels=labels)

    def deploy(self, model: str, *, traffic_split: dict[str, int], display_name: str, machine_type: str,
               min_replicas: int, max_replicas: int, service_account: str | None) -> None:
        endpoint, chosen = self._endpoint(), self.aiplatform.Model(model)
        self._error = None

        def run() -> None:
            try:
                endpoint.deploy(chosen, deployed_model_display_name=display_name, traffic_split=traffic_split,
                                machine_type=machine_type, min_replica_count=min_replicas,
                                max_replica_count=max_replicas, service_account=service_account, sync=True)
            except Exception as err:  # reported through deploy_error, read by the readiness job
                self._error = f"{type(err).__name__}: {err}"

        self._thread = threading.Thread(target=run, name="vertex-deploy", daemon=True)
        self._thread.start()

    def deploy_pending(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def deploy_error(self) -> str | None:
        return self._error

    def update(self, *, traffic_split: dict[str, int]) -> None:
        self._endpoint().update(traffic_split=traffic_split)

    def undeploy(self, deployed_model_id: str, *, traffic_split: dict[str, int] | None = None) -> None:
        self._endpoint().undeploy(deployed_model_id=deployed_model_id, traffic_split=traffic_split)

    def predict(self, instances: list[dict[str, Any]]) -> Answer:
        answer = self._endpoint().predict(instances=instances)
        return Answer(list(answer.predictions), str(answer.deployed_model_id))

    def find_model(self, labels: dict[str, str]) -> ModelInfo | None:
        query = " AND ".join(f'labels.{k}="{v}"' for k, v in sorted(labels.items()))
        found = self.aiplatform.Model.list(filter=query)
        return self._info(found[0]) if found else None

    def upload_model(self, *, display_name: str, artifact_uri: str, serving_image: str, command: list[str],
                     args: list[str], predict_route: str, health_route: str, port: int,
                     labels: dict[str, str]) -> ModelInfo:
        model = self.aiplatform.Model.upload(
            display_name=display_name, artifact_uri=artifact_uri, serving_container_image_uri=serving_image,
            serving_container_command=command, serving_container_args=args,
            serving_container_predict_route=predict_route, serving_container_health_route=health_route,
            serving_container_ports=[port], labels=labels)
        return self._info(model)

    def model(self, resource_name: str) -> ModelInfo:
        return self._info(self.aiplatform.Model(resource_name))

    @staticmethod
    def _info(model: Any) -> ModelInfo:
        return ModelInfo(str(model.resource_name), str(model.uri or ""), dict(model.labels or {}))

