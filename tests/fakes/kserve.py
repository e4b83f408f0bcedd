"""A fake KServe 0.21 controller and cluster network over ``FakeCustomObjectsApi``, for canary rollout tests.

``FakeKServe`` reconciles InferenceServices the way KServe does, one scripted step per ``tick`` (tests call it on
every sleep of a ``ManualClock``, i.e. once per poll interval), and writes the status through the status
subresource. Steps model what the controller reports at that moment:

Knative (serverless) mode — revisions as Knative makes them: a new one whenever the pod template (the predictor
less ``canaryTrafficPercent``, the object's labels and annotations) changes; traffic as KServe's
``ksvc_reconciler.go`` asks for it (``latestRevision`` at ``canaryTrafficPercent``, the last revision rolled out
to 100 % tagged ``prev``), resolved as Knative does (the latest-revision target goes to the latest *ready*
revision); ``latestRolledoutRevision`` tracked as ``PropagateStatus`` does.

- ``"stale"``: the controller has not run: the status is the one from before the last change.
- ``"pending"``: reconciled, the latest revision is not ready yet (``Ready`` Unknown).
- ``"ready"``: the latest revision is ready; conditions True.
- ``"crashloop"``: the latest revision's pods crash-loop: it never becomes the latest ready one, KServe's
  ``modelStatus`` says ``BlockedByFailedLoad``, and ``Ready`` stays True (the route still serves the old revision).
- ``"revision_failed"``: Knative gave up on the latest revision (``RevisionFailed``).
- ``"traffic_stuck"``: the latest revision is ready but the route still carries the previous split.

Standard (raw) mode — the stable predictor as one Deployment, each ``spec.canary`` entry as its own, and
``status.canaryStatuses`` rebuilt from the spec as ``reconcileCanaryDeployments`` does (``ready`` = an available
replica; the ``CanaryPredictorReady`` condition): ``"stale"``, ``"pending"`` (nothing available yet), ``"ready"``,
``"crashloop"`` (the candidate's pods never become available; ``Ready`` stays True for the stable predictor).

``FakeKServe.post`` is the cluster network: it answers ``POST /v1/models/<service>:predict`` at the in-cluster
addresses of the predictor Services and Knative tag routes with the model that really serves there (test models
by storage URI), and refuses what a cluster would (unknown host, nothing ready behind it).
"""

from __future__ import annotations

import copy
import json
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.k8s import FakeCustomObjectsApi

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
DOMAIN = "example.com"
Model = Callable[[list[dict[str, Any]]], list[Any]]


class RequestFailed(ConnectionError):
    """An HTTP request failed the way it would in a cluster (no such host, 503, 500 from the model)."""


@dataclass
class Revision:
    name: str
    template: str
    model_uri: str
    state: str = "creating"  # creating, ready, crashloop, failed


@dataclass
class _Knative:
    uid: str = ""
    revisions: list[Revision] = field(default_factory=list)
    rolled_out: str = ""
    previous_rolled_out: str = ""
    traffic: list[dict[str, Any]] = field(default_factory=list)
    split_counter: int = 0


@dataclass
class _Raw:
    uid: str = ""
    stable_uri: str = ""
    stable_ready: bool = False
    canaries: dict[str, tuple[str, bool]] = field(default_factory=dict)  # name -> (model URI, available)


def _diff(old: Any, new: Any) -> Any:
    """The RFC 7386 merge patch turning ``old`` into ``new``."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return copy.deepcopy(new)
    out: dict[str, Any] = {k: None for k in old if k not in new}
    for k, v in new.items():
        if k not in old or old[k] != v:
            out[k] = _diff(old.get(k), v)
    return out


def _condition(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    cond = {"type": kind, "status": status, "lastTransitionTime": "2026-01-01T00:00:00Z"}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def _template(obj: dict[str, Any]) -> str:
    predictor = dict(obj["spec"]["predictor"])
    predictor.pop("canaryTrafficPercent", None)
    meta = obj["metadata"]
    return json.dumps([predictor, meta.get("labels") or {}, meta.get("annotations") or {}], sort_keys=True)


class FakeKServe:
    """KServe's controller and the cluster's network for the InferenceServices in ``api`` (see the module doc)."""

    def __init__(self, api: FakeCustomObjectsApi, namespace: str = "kubeflow") -> None:
        self.api, self.namespace = api, namespace
        self.models: dict[str, Model] = {}
        self.plan: deque[str] = deque()
        self.last_step = "stale"
        self.steps: list[str] = []
        self.requests: list[tuple[str, str]] = []  # (host, model URI that answered)
        self._knative: dict[str, _Knative] = {}
        self._raw: dict[str, _Raw] = {}

    # ----- driving
    def script(self, *steps: str) -> None:
        """Queue controller steps, one per tick; when the queue is empty the last step repeats."""
        self.plan.extend(steps)

    def tick(self, *_: Any) -> None:
        """One reconcile of every InferenceService (a ``ManualClock`` ``on_sleep`` hook)."""
        step = self.plan.popleft() if self.plan else self.last_step
        self.last_step = step
        self.steps.append(step)
        for obj in self.api.stored(PLURAL):
            self.reconcile(obj["metadata"]["name"], step)

    def settle(self, name: str) -> None:
        """Reconcile ``name`` until it is ready (test setup)."""
        self.reconcile(name, "ready")

    def reconcile(self, name: str, step: str) -> None:
        """Apply one controller step to ``name``."""
        if step == "stale":
            return
        obj = next(o for o in self.api.stored(PLURAL) if o["metadata"]["name"] == name)
        raw = obj["metadata"].get("annotations", {}).get("serving.kserve.io/deploymentMode") == "Standard"
        status = self._raw_status(obj, step) if raw else self._knative_status(obj, step)
        body = {"status": _diff(obj.get("status") or {}, status)}
        self.api.patch_namespaced_custom_object_status(GROUP, VERSION, self.namespace, PLURAL, name, body)

    # ----- Knative
    def _host(self, name: str, tag: str = "") -> str:
        route = f"{name}-predictor"
        return f"{tag}-{route}" if tag else route

    def _knative_status(self, obj: dict[str, Any], step: str) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        if self._knative.get(name, _Knative()).uid != obj["metadata"]["uid"]:  # a new object of that name
            self._knative[name] = _Knative(uid=obj["metadata"]["uid"])
        state = self._knative[name]
        template = _template(obj)
        if not state.revisions or state.revisions[-1].template != template:
            n = len(state.revisions) + 1
            uri = obj["spec"]["predictor"]["model"]["storageUri"]
            state.revisions.append(Revision(f"{name}-predictor-{n:05d}", template, uri))
        latest = state.revisions[-1]
        latest.state = {"ready": "ready", "traffic_stuck": "ready", "crashloop": "crashloop",
                        "revision_failed": "failed"}.get(step, "creating" if latest.state != "ready" else "ready")
        ready = next((r for r in reversed(state.revisions) if r.state == "ready"), None)
        if step != "traffic_stuck":
            state.traffic = self._route(obj, state, ready)
        self._track_rollout(state, ready)
        pred: dict[str, Any] = {
            "latestCreatedRevision": latest.name,
            "url": f"http://{self._host(name)}.{self.namespace}.{DOMAIN}",
            "address": {"url": f"http://{self._host(name)}.{self.namespace}.svc.cluster.local"},
        }
        if ready is not None:
            pred["latestReadyRevision"] = ready.name
        if state.rolled_out:
            pred["latestRolledoutRevision"] = state.rolled_out
        if state.previous_rolled_out:
            pred["previousRolledoutRevision"] = state.previous_rolled_out
        if state.traffic:
            pred["traffic"] = copy.deepcopy(state.traffic)
        conditions, model_status = self._knative_conditions(latest, ready)
        return {"address": {"url": f"http://{name}.{self.namespace}.svc.cluster.local"},
                "components": {"predictor": pred}, "conditions": conditions, "deploymentMode": "Knative",
                "modelStatus": model_status, "observedGeneration": obj["metadata"]["generation"],
                "url": f"http://{name}.{self.namespace}.{DOMAIN}"}

    def _route(self, obj: dict[str, Any], state: _Knative, ready: Revision | None) -> list[dict[str, Any]]:
        if ready is None:
            return []
        name = obj["metadata"]["name"]
        percent = obj["spec"]["predictor"].get("canaryTrafficPercent")
        tagged = obj["metadata"].get("annotations", {}).get("serving.kserve.io/enable-tag-routing") == "true"

        def target(revision: str, pct: int, latest: bool, tag: str) -> dict[str, Any]:
            entry: dict[str, Any] = {"latestRevision": latest, "percent": pct, "revisionName": revision}
            if tag:
                entry.update(tag=tag, url=f"http://{self._host(name, tag)}.{self.namespace}.{DOMAIN}")
            return entry

        if percent is not None and state.rolled_out:
            out = [target(ready.name, percent, True, "latest" if tagged else "")]
            if percent < 100:
                out.append(target(state.rolled_out, 100 - percent, False, "prev"))
            return out
        return [target(ready.name, 100, True, "latest" if tagged else "")]

    @staticmethod
    def _track_rollout(state: _Knative, ready: Revision | None) -> None:
        if ready is None:
            return
        for entry in state.traffic:
            full = entry["revisionName"] == ready.name and entry["latestRevision"] and entry["percent"] == 100
            if full and state.rolled_out != ready.name:
                state.previous_rolled_out, state.rolled_out = state.rolled_out, ready.name

    @staticmethod
    def _knative_conditions(latest: Revision, ready: Revision | None) -> tuple[list[dict[str, Any]],
                                                                               dict[str, Any]]:
        loaded = {"copies": {"failedCopies": 0, "totalCopies": 1}, "transitionStatus": "UpToDate",
                  "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"}}
        if latest.state == "failed":
            message = f'Revision "{latest.name}" failed with message: Container failed with: exit status 1.'
            bad = [_condition(k, "False", "RevisionFailed", message)
                   for k in ("PredictorConfigurationReady", "PredictorReady", "Ready")]
            return [*bad, _condition("PredictorRouteReady", "True")], {**loaded, "transitionStatus": "InProgress"}
        if latest.state == "crashloop":
            failed = {"copies": {"failedCopies": 0}, "transitionStatus": "BlockedByFailedLoad",
                      "states": {"activeModelState": "Loaded", "targetModelState": "FailedToLoad"},
                      "lastFailureInfo": {"reason": "ModelLoadFailed", "exitCode": 1,
                                          "message": "model card not found under /mnt/models"}}
            ok = [_condition(k, "True") for k in ("PredictorConfigurationReady", "PredictorReady",
                                                  "PredictorRouteReady", "Ready")]
            return ok, failed
        if latest.state == "ready":
            ok = [_condition(k, "True") for k in ("PredictorConfigurationReady", "PredictorReady",
                                                  "PredictorRouteReady", "Ready")]
            return ok, loaded
        waiting = [_condition(k, "Unknown", "RevisionMissing" if ready is None else "", "")
                   for k in ("PredictorConfigurationReady", "PredictorReady", "Ready")]
        return [*waiting, _condition("PredictorRouteReady", "True" if ready else "Unknown")], {
            "copies": {"failedCopies": 0}, "transitionStatus": "InProgress",
            "states": {"activeModelState": "Loaded" if ready else "Pending", "targetModelState": "Pending"}}

    # ----- Standard (raw)
    def _raw_status(self, obj: dict[str, Any], step: str) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        if self._raw.get(name, _Raw()).uid != obj["metadata"]["uid"]:
            self._raw[name] = _Raw(uid=obj["metadata"]["uid"])
        state = self._raw[name]
        spec = obj["spec"]
        uri = spec["predictor"]["model"]["storageUri"]
        if uri != state.stable_uri:  # the stable Deployment rolls to a new model
            state.stable_uri, state.stable_ready = uri, False
        available = step == "ready"
        if available:
            state.stable_ready = True
        if step == "crashloop" and not spec.get("canary"):
            state.stable_ready = False  # a first deployment that crash-loops
        wanted = {e["predictor"]["name"]: e for e in spec.get("canary") or []}
        canaries = {}
        for cname, entry in wanted.items():
            curi = entry["predictor"]["model"]["storageUri"]
            old = state.canaries.get(cname)
            was = old is not None and old[0] == curi and old[1]
            canaries[cname] = (curi, was or available)
        state.canaries = canaries
        statuses = [{"name": n, "ready": state.canaries[n][1], "trafficPercent": e["trafficPercent"]}
                    for n, e in wanted.items()]
        stable = "True" if state.stable_ready else "Unknown"
        conds = [_condition(k, stable) for k in ("PredictorReady", "Ready", "IngressReady")]
        if wanted:
            all_ready = all(s["ready"] for s in statuses)
            conds.append(_condition("CanaryPredictorReady", "True" if all_ready else "False",
                                    "AllCanariesReady" if all_ready else "CanariesNotReady"))
        model_status: dict[str, Any] = {"copies": {"failedCopies": 0}, "transitionStatus": "UpToDate" if
                                        state.stable_ready else "InProgress",
                                        "states": {"activeModelState": "Loaded" if state.stable_ready else "Pending"}}
        if step == "crashloop" and not wanted:
            model_status = {"copies": {"failedCopies": 0}, "transitionStatus": "BlockedByFailedLoad",
                            "states": {"activeModelState": "Pending", "targetModelState": "FailedToLoad"},
                            "lastFailureInfo": {"reason": "ModelLoadFailed", "exitCode": 1}}
        status: dict[str, Any] = {
            "address": {"url": f"http://{name}-predictor.{self.namespace}.svc.cluster.local"},
            "components": {"predictor": {"url": f"http://{name}-predictor.{self.namespace}.svc.cluster.local"}},
            "conditions": conds, "deploymentMode": "Standard", "modelStatus": model_status,
            "observedGeneration": 1,  # the stable Deployment's own counter (kserve#6081)
            "url": f"http://{name}.{self.namespace}.{DOMAIN}"}
        if statuses:
            status["canaryStatuses"] = statuses
        return status

    # ----- the network
    def _resolve(self, host: str) -> tuple[str, str] | None:
        """(service, model URI) answering at ``host`` (first label of an in-cluster address), or None."""
        for obj in self.api.stored(PLURAL):
            name = obj["metadata"]["name"]
            if name in self._knative:
                state = self._knative[name]
                by_name = {r.name: r for r in state.revisions}
                for entry in state.traffic:
                    if entry.get("tag") and host == self._host(name, entry["tag"]):
                        rev = by_name[entry["revisionName"]]
                        return (name, rev.model_uri) if rev.state == "ready" else None
                if host == self._host(name) and state.traffic:  # the split itself: exact, spread evenly
                    k, state.split_counter = state.split_counter, state.split_counter + 1
                    first = state.traffic[0]
                    pct = int(first["percent"])
                    chosen = first if ((k + 1) * pct) // 100 > (k * pct) // 100 else state.traffic[-1]
                    return name, by_name[chosen["revisionName"]].model_uri
            if name in self._raw:
                state_raw = self._raw[name]
                if host == f"{name}-predictor":
                    return (name, state_raw.stable_uri) if state_raw.stable_ready else None
                for cname, (uri, ready) in state_raw.canaries.items():
                    if host == f"{name}-{cname}-predictor":
                        return (name, uri) if ready else None
        return None

    def post(self, url: str, body: dict[str, Any]) -> Any:
        """``POST url`` with a JSON body, answered by the model serving at that address."""
        if not url.startswith("http://"):
            raise RequestFailed(f"unsupported URL {url}")
        host, _, path = url.removeprefix("http://").partition("/")
        first, _, rest = host.partition(".")
        if rest != f"{self.namespace}.svc.cluster.local":
            raise RequestFailed(f"cannot resolve {host} from inside the cluster")
        found = self._resolve(first)
        if found is None:
            raise RequestFailed(f"503 Service Unavailable: no ready endpoint behind {host}")
        service, uri = found
        if path != f"v1/models/{service}:predict":
            raise RequestFailed(f"404 Not Found: /{path}")
        rows = body.get("instances")
        if not isinstance(rows, list):
            raise RequestFailed("400 Bad Request: instances must be a list")
        self.requests.append((first, uri))
        return {"predictions": self.models[uri](rows)}


def tabular(quality: float) -> Model:
    """A model answering like the catalog's predictor: P(label = 1) is ``quality`` for odd ``x``, else
    ``1 - quality`` (labels ``x % 2``: quality 0.9 ranks perfectly, 0.1 backwards)."""
    def predict(rows: Sequence[dict[str, Any]]) -> list[Any]:
        out = []
        for r in rows:
            p = quality if int(r["x"]) % 2 else 1 - quality
            out.append({"probability": p, "class": int(p >= 0.5)})
        return out

    return predict


def failing(every: int, model: Model) -> Model:
    """``model``, but every ``every``-th request answers HTTP 500."""
    calls = {"n": 0}

    def predict(rows: list[dict[str, Any]]) -> list[Any]:
        calls["n"] += 1
        if calls["n"] % every == 0:
            raise RequestFailed("500 Internal Server Error: model raised")
        return model(rows)

    return predict
