"""KServe serving backend: one InferenceService per service, rolled out in Knative (serverless) or Standard (raw)
mode through the shared custom-resource launcher, waited on through the one wait path.

The InferenceService is rendered by ``components.serving.inference_service`` (its module docstring has the state
table); the backend creates it for a first deployment and otherwise merge-patches only what a step changes:

- deploy: Knative: the predictor (new model, ``canaryTrafficPercent: N``) and the annotations (previous model, run
  and task) in one patch, which is one new revision; Standard: ``spec.canary`` only (the stable Deployment is not
  touched). A first deployment is created at 100 %.
- promote: ``canaryTrafficPercent: 100`` (a first deployment, and every Knative canary); Standard: the stable
  predictor takes the candidate's model while the canary entry holds 100 % until the next rollout replaces it.
- roll back: Knative ``canaryTrafficPercent: 0`` (KServe's own rollback: the ``prev`` revision takes all traffic);
  Standard ``spec.canary: null`` (the controller deletes the canary's Deployment and Service); a first deployment is
  deleted. Cancelling the readiness job (deadline, SIGTERM) rolls back.

Readiness is not ``Ready`` (see ``assess``). Predictions go to the model directly: Knative through the ``latest``
and ``prev`` tag routes (cluster-local addresses of the URLs in ``status.components.predictor.traffic``),
Standard through the predictor Services. Clients are injected (tests) or built on first use.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlparse

from components._core.jobs import JobPhase, JobStatus, RunningJob, WaitPolicy, call_with_retry
from components._core.k8s import CustomResourceLauncher, api_policy_for, generation_observed, transient_api_error
from components._core.signals import Terminated, deferred_sigterm
from components._core.waiting import Clock
from components.serving import inference_service as isvc
from components.serving.canary.backend import RolloutFailure, ServingBackend, Which, record_seen
from components.serving.target import DeployConfig, Served

log = logging.getLogger(__name__)
Transport = Callable[[str, dict[str, Any]], Any]  # POST a JSON body to a URL, return the decoded JSON answer
LineageReader = Callable[[str, str], dict[str, Any]]
FAILED_LOAD_READS = 3  # consecutive reads of a model that failed to load before the rollout gives up early
FAILED_LOAD = "BlockedByFailedLoad"


# ---------------------------------------------------------------- responses, lineage, transport


def probabilities(payload: Any, rows: int) -> list[float]:
    """P(label = 1) per row from a v1 answer ``{"predictions": [...]}``; each prediction is a probability or an
    object with a ``probability`` field (the catalog's predictor answers ``{"probability": p, "class": c}``).
    Raises ``ValueError`` naming what is wrong (a malformed answer is a failed request)."""
    preds = payload.get("predictions") if isinstance(payload, dict) else None
    if not isinstance(preds, list) or len(preds) != rows:
        raise ValueError(f"expected {{'predictions': [{rows} items]}}, got {str(payload)[:200]}")
    out = []
    for p in preds:
        value = p.get("probability") if isinstance(p, dict) else p
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"prediction is not a probability: {str(p)[:200]}")
        out.append(float(value))
    return out


def http_transport(timeout_s: float = 30.0) -> Transport:
    """POST JSON with httpx; HTTP errors raise (``httpx.HTTPStatusError``)."""
    import httpx

    client = httpx.Client(timeout=timeout_s)

    def post(url: str, body: dict[str, Any]) -> Any:
        answer = client.post(url, json=body)
        answer.raise_for_status()
        return answer.json()

    return post


def read_lineage(model_uri: str, version: str) -> dict[str, Any]:
    """The lineage in the model card at ``model_uri``; ``{}`` when the card cannot be read from here."""
    from components.serving.lineage import Lineage

    try:
        return Lineage.read(model_uri, version).to_dict()
    except Exception as err:  # lineage is for the record: an unreadable card never stops a rollout
        log.info("lineage of %s not readable here: %s", model_uri, err)
        return {}


# ---------------------------------------------------------------- readiness


@dataclass(frozen=True)
class Expectation:
    """What the deploy asked for: the candidate at ``percent`` (100 on a first deployment)."""

    raw: bool
    version: str
    percent: int
    first: bool
    canary: str = ""  # Standard mode: the canary predictor's name
    known_revisions: frozenset[str] = frozenset()  # Knative: revisions that existed before the deploy
    new_revision: bool = False  # Knative: the deploy changed the pod template, so the candidate is a new revision


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(c.get("type")): c for c in (obj.get("status") or {}).get("conditions") or []}


def _cond_text(conds: dict[str, dict[str, Any]], kind: str) -> str:
    c = conds.get(kind)
    if c is None:
        return f"{kind} not reported"
    why = ": ".join(str(c[k]) for k in ("reason", "message") if c.get(k))
    return f"{kind} is {c.get('status')}" + (f" ({why})" if why else "")


def _predictor_status(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(((obj.get("status") or {}).get("components") or {}).get("predictor") or {})


def _revision_failure(conds: dict[str, dict[str, Any]], created: str) -> str | None:
    """Knative's verdict on the latest created revision: its Configuration turns Ready False with reason
    ``RevisionFailed`` and the message ``Revision "<name>" failed with message: ...`` (knative/serving
    ``ConfigurationStatus.MarkLatestCreatedFailed``), which KServe copies into ``PredictorConfigurationReady``
    and ``PredictorReady`` (``InferenceServiceStatus.PropagateStatus``)."""
    for kind in ("PredictorConfigurationReady", "PredictorReady", "LatestDeploymentReady", "Ready"):
        c = conds.get(kind) or {}
        if c.get("status") == "False" and c.get("reason") == "RevisionFailed":
            named = re.findall(r'Revision "([^"]+)"', str(c.get("message") or ""))
            if not named or created in named:
                return f"revision {created} failed: {c.get('message') or c.get('reason')}"
    return None


def _model_failure(model_status: dict[str, Any]) -> str:
    info = model_status.get("lastFailureInfo") or {}
    return ", ".join(f"{k} {info[k]}" for k in ("reason", "exitCode", "message") if info.get(k) not in (None, ""))


def _traffic_text(entries: list[dict[str, Any]]) -> str:
    return ", ".join(f"{e.get('revisionName') or '?'}{'/' + e['tag'] if e.get('tag') else ''} {e.get('percent', 0)}%"
                     for e in entries) or "none"


def _assess_knative(obj: dict[str, Any], exp: Expectation) -> tuple[JobPhase, str, bool]:
    """Knative mode. Succeeded only when all of: the controller saw the latest spec (``observedGeneration >=
    generation``, necessary though not sufficient: KServe copies it from the Knative Service, kserve#6081); the
    latest created revision is the candidate's (new since the deploy when the deploy changed the pod template) and
    is the latest ready one (a crash-looping candidate keeps ``latestReadyRevision`` on the old revision while
    ``Ready`` may stay True); ``Ready`` and ``PredictorReady`` are True; and the traffic KServe reports has that
    revision (``latestRevision: true``) at N % and the ``prev`` revision at 100 - N % (ksvc_reconciler.go), since a
    never-ready candidate's share silently goes to the latest *ready* revision. Failed when Knative reports the
    candidate revision failed (``RevisionFailed``); the third flag says the candidate's pods fail to load the model
    (KServe's ``modelStatus.transitionStatus: BlockedByFailedLoad``, set from the latest created revision's pods
    in ``PropagateModelStatus``)."""
    status = obj.get("status") or {}
    pred, conds = _predictor_status(obj), _conditions(obj)
    created, ready = str(pred.get("latestCreatedRevision") or ""), str(pred.get("latestReadyRevision") or "")
    observed = generation_observed(obj)
    fresh = bool(created) and not (exp.new_revision and created in exp.known_revisions)
    if observed and fresh:
        failure = _revision_failure(conds, created)
        if failure:
            return JobPhase.FAILED, failure, False
    model_status = status.get("modelStatus") or {}
    failed_load = observed and fresh and created != ready and model_status.get("transitionStatus") == FAILED_LOAD
    entries = [dict(e) for e in pred.get("traffic") or []]
    latest = sum(int(e.get("percent") or 0) for e in entries if e.get("latestRevision") and e.get("revisionName")
                 == created)
    prev = [e for e in entries if e.get("tag") == "prev" and e.get("revisionName") not in ("", None, created)]
    want_prev = 100 - exp.percent
    if not observed:
        why = (f"status is older than the spec: observedGeneration {status.get('observedGeneration')} < "
               f"generation {(obj.get('metadata') or {}).get('generation')}")
    elif not fresh:
        why = f"no revision of the candidate yet (latest created: {created or 'none'})"
    elif created != ready:
        why = f"revision {created} is not ready (latest ready: {ready or 'none'})"
        if failed_load:
            why += f"; its model fails to load: {_model_failure(model_status)}"
    elif any((conds.get(k) or {}).get("status") != "True" for k in ("Ready", "PredictorReady")):
        why = "; ".join(_cond_text(conds, k) for k in ("Ready", "PredictorReady"))
    elif latest != exp.percent or (want_prev and sum(int(e.get("percent") or 0) for e in prev) != want_prev):
        why = (f"traffic not in place: want {created} {exp.percent}%" + (f" and prev {want_prev}%" if want_prev
               else "") + f", KServe reports {_traffic_text(entries)}")
    else:
        prev_text = f", prev {prev[0].get('revisionName')} {want_prev}%" if want_prev else ""
        return JobPhase.SUCCEEDED, f"revision {created} ready with {exp.percent}% of the traffic{prev_text}", False
    return JobPhase.PENDING, why, failed_load


def _assess_raw(obj: dict[str, Any], exp: Expectation) -> tuple[JobPhase, str, bool]:
    """Standard mode. A first deployment: ``Ready`` and ``PredictorReady`` True. A canary: its entry in
    ``status.canaryStatuses`` (rebuilt from the spec on every reconcile, so an entry with the candidate's name and
    percent is not left over from an earlier spec) is ready (the canary Deployment has an available replica,
    ``reconcileCanaryDeployments``) at N %, ``CanaryPredictorReady`` is True (it is not part of ``Ready``), and
    ``Ready`` is True for the stable predictor. Only ready canaries get their weight in the HTTPRoute
    (``applyCanaryWeights``), so a canary that is not ready leaves its share on the stable predictor.
    ``observedGeneration`` is not used: in this mode KServe copies it from the stable Deployment (kserve#6081).
    KServe 0.21 reports no failure for a canary (``canaryStatuses[].modelStatus`` is declared, never written), so a
    broken canary is caught by the deadline; the flag reads that field should a later KServe write it."""
    status, conds = obj.get("status") or {}, _conditions(obj)
    if exp.first:
        model_status = status.get("modelStatus") or {}
        failed_load = model_status.get("transitionStatus") == FAILED_LOAD
        if all((conds.get(k) or {}).get("status") == "True" for k in ("Ready", "PredictorReady")):
            return JobPhase.SUCCEEDED, "predictor ready with 100% of the traffic", False
        why = "; ".join(_cond_text(conds, k) for k in ("Ready", "PredictorReady"))
        if failed_load:
            why += f"; its model fails to load: {_model_failure(model_status)}"
        return JobPhase.PENDING, why, failed_load
    entry = next((dict(e) for e in status.get("canaryStatuses") or [] if e.get("name") == exp.canary), None)
    if entry is None:
        return JobPhase.PENDING, f"the controller has not reported canary {exp.canary} yet", False
    failed_load = (entry.get("modelStatus") or {}).get("transitionStatus") == FAILED_LOAD
    if int(entry.get("trafficPercent") or 0) != exp.percent:
        why = f"canary {exp.canary} reported at {entry.get('trafficPercent')}% (want {exp.percent}%)"
    elif not entry.get("ready"):
        why = f"canary {exp.canary} has no available replica: its share stays on the stable predictor"
    elif any((conds.get(k) or {}).get("status") != "True" for k in ("CanaryPredictorReady", "Ready")):
        why = "; ".join(_cond_text(conds, k) for k in ("CanaryPredictorReady", "Ready"))
    else:
        return JobPhase.SUCCEEDED, f"canary {exp.canary} ready with {exp.percent}% of the traffic", False
    return JobPhase.PENDING, why, failed_load


def assess(obj: dict[str, Any] | None, exp: Expectation) -> tuple[JobPhase, str, bool]:
    """The readiness of the deployed candidate in ``obj``: ``(phase, why, model failed to load)``. Cancelled when
    the object is gone, being deleted, or no longer deploys the candidate (changed by someone else)."""
    if obj is None:
        return JobPhase.CANCELLED, "the InferenceService no longer exists", False
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return JobPhase.CANCELLED, "the InferenceService is being deleted", False
    spec = obj.get("spec") or {}
    if exp.raw and not exp.first:
        names = [str((e.get("predictor") or {}).get("name")) for e in spec.get("canary") or []]
        if exp.canary not in names:
            return JobPhase.CANCELLED, f"canary {exp.canary} is no longer in the spec (now: {names})", False
    else:
        version = str(((spec.get("predictor") or {}).get("annotations") or {}).get(isvc.MODEL_VERSION_ANNOTATION))
        if version != exp.version:
            return JobPhase.CANCELLED, f"the spec deploys model {version}, not the candidate {exp.version}", False
    return _assess_raw(obj, exp) if exp.raw else _assess_knative(obj, exp)


def trimmed(obj: dict[str, Any] | None) -> dict[str, Any]:
    """What matters of an InferenceService's status for the rollout record."""
    if obj is None:
        return {"exists": False}
    status, pred = obj.get("status") or {}, _predictor_status(obj)
    out: dict[str, Any] = {
        "generation": (obj.get("metadata") or {}).get("generation"),
        "observedGeneration": status.get("observedGeneration"),
        "conditions": [{k: c[k] for k in ("type", "status", "reason", "message") if c.get(k)}
                       for c in status.get("conditions") or []],
    }
    for key in ("latestCreatedRevision", "latestReadyRevision", "latestRolledoutRevision"):
        if pred.get(key):
            out[key] = pred[key]
    if pred.get("traffic"):
        out["traffic"] = [{k: e[k] for k in ("revisionName", "tag", "percent", "latestRevision") if k in e}
                          for e in pred["traffic"]]
    if status.get("canaryStatuses"):
        out["canaryStatuses"] = [{k: e.get(k) for k in ("name", "ready", "trafficPercent")}
                                 for e in status["canaryStatuses"]]
    model = status.get("modelStatus") or {}
    if model.get("transitionStatus"):
        out["modelStatus"] = {"transitionStatus": model["transitionStatus"], **(
            {"lastFailure": _model_failure(model)} if model.get("lastFailureInfo") else {})}
    return out


class CanaryReadiness(RunningJob):
    """The deployed candidate as a ``RunningJob``: succeeded once ``assess`` says so, failed when KServe reports
    the candidate failed (or its model failed to load in ``FAILED_LOAD_READS`` reads in a row); cancel = roll
    back. Each status read is one GET; transient API errors are the wait path's to retry."""

    def __init__(self, backend: KServeServing, exp: Expectation, policy: WaitPolicy) -> None:
        self.backend, self.exp, self._policy = backend, exp, policy
        self.name = (f"InferenceService {backend.target.namespace}/{backend.service} (candidate {exp.version} at "
                     f"{exp.percent}%)")
        self.failed_loads = 0

    @property
    def policy(self) -> WaitPolicy:
        return self._policy

    def status(self) -> JobStatus:
        obj = self.backend.launcher.get(self.backend.service)
        phase, why, failed_load = assess(obj, self.exp)
        self.failed_loads = self.failed_loads + 1 if failed_load else 0
        if self.failed_loads >= FAILED_LOAD_READS:
            phase, why = JobPhase.FAILED, f"{why} (in {self.failed_loads} reads in a row)"
        self.backend.note(obj, f"{phase.value}: {why}")
        return JobStatus(phase, why, {"status": trimmed(obj)})

    def cancel(self) -> None:
        self.backend.rollback()

    def logs(self) -> str:
        return self.backend.launcher.collect_logs(self.backend.service,
                                                  f"{isvc.POD_SELECTOR_LABEL}={self.backend.service}")


# ---------------------------------------------------------------- the backend


@dataclass(frozen=True)
class _Rollout:
    stable: Served | None
    candidate: Served
    percent: int

    @property
    def first(self) -> bool:
        return self.stable is None


def _revisions(obj: dict[str, Any]) -> frozenset[str]:
    pred = _predictor_status(obj)
    names = {pred.get(k) for k in ("latestCreatedRevision", "latestReadyRevision", "latestRolledoutRevision",
                                   "previousRolledoutRevision")}
    names |= {e.get("revisionName") for e in pred.get("traffic") or []}
    return frozenset(str(n) for n in names if n)


def _template(obj: dict[str, Any]) -> str:
    """What reaches the Knative revision template: the predictor (less the traffic percent) and the object's
    labels and annotations (KServe's ``buildPredictorResources`` copies them)."""
    predictor = dict((obj.get("spec") or {}).get("predictor") or {})
    predictor.pop("canaryTrafficPercent", None)
    meta = obj.get("metadata") or {}
    return json.dumps([predictor, meta.get("labels") or {}, meta.get("annotations") or {}], sort_keys=True)


def cluster_local(url: str, namespace: str) -> str:
    """The in-cluster address of a Knative route URL: Knative makes a Kubernetes Service named after the first
    label of each (tag) route's host in the route's namespace (knative.dev/docs/serving/traffic-management: "a
    new Kubernetes Service called staging-<route name> will be created"), reachable from the step's pod whatever
    the cluster's public domain is."""
    host = urlparse(url).hostname or ""
    if not host:
        raise RolloutFailure(f"no host in the URL {url!r} KServe reports")
    if host.endswith(".svc.cluster.local"):
        return f"http://{host}"
    return f"http://{host.split('.')[0]}.{namespace}.svc.cluster.local"


class KServeServing(ServingBackend):
    """A KServe InferenceService named ``cfg.service`` (see the module docstring)."""

    def __init__(self, cfg: DeployConfig, *, api: Any = None, core_api: Any = None, transport: Transport | None = None,
                 clock: Clock | None = None, run_id: str = "", task: str = "",
                 lineage_reader: LineageReader | None = None) -> None:
        self.cfg, self.target, self.service = cfg, cfg.kserve, cfg.service
        self.raw = self.target.mode == "raw"
        self.run_id, self.task = run_id, task
        self._api, self._core_api, self._clock = api, core_api, clock
        self._transport, self._lineage = transport, lineage_reader or read_lineage
        self._rollout: _Rollout | None = None
        self._exp: Expectation | None = None
        self._urls: dict[str, str] = {}
        self._seen: list[dict[str, Any]] = []

    @classmethod
    def from_config(cls, cfg: DeployConfig, **clients: Any) -> Self:
        """Clients: ``api`` / ``core_api`` (kubernetes), ``transport``, ``clock``, ``run_id``, ``task``,
        ``lineage_reader``; the kubernetes clients are made on first use when not given."""
        return cls(cfg, **clients)

    @functools.cached_property
    def launcher(self) -> CustomResourceLauncher:
        """The shared launcher bound to InferenceServices in the target namespace."""
        return CustomResourceLauncher(self._api, isvc.GROUP, isvc.VERSION, isvc.PLURAL, self.target.namespace,
                                      core_api=self._core_api, clock=self._clock,
                                      retry=api_policy_for(self.target.wait))

    @property
    def transport(self) -> Transport:
        """How predictions are sent (httpx unless injected)."""
        if self._transport is None:
            self._transport = http_transport()
        return self._transport

    # ----- reading
    def note(self, obj: dict[str, Any] | None, assessment: str = "") -> None:
        """Record a status seen (consecutive equal ones are counted, not repeated)."""
        entry = trimmed(obj)
        if assessment:
            entry["assessment"] = assessment
        record_seen(self._seen, entry)

    def _read(self) -> dict[str, Any] | None:
        obj = call_with_retry(lambda: self.launcher.get(self.service), self.launcher.retry,
                              what=f"get {self.launcher.ref(self.service)}", clock=self.launcher.clock)
        self.note(obj)
        return obj

    def _with_lineage(self, served: Served | None) -> Served | None:
        if served is None:
            return None
        return Served(served.model_uri, served.version, self._lineage(served.model_uri, served.version))

    def stable(self) -> Served | None:
        obj = self._read()
        return self._with_lineage(isvc.deployed(obj).stable) if obj else None

    def canary(self) -> Served | None:
        obj = self._read()
        return self._with_lineage(isvc.deployed(obj).canary) if obj else None

    def statuses(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._seen)

    def endpoint(self) -> str:
        """The InferenceService's URL (``status.url``; the in-cluster address when KServe reports no other)."""
        obj = self.launcher.get(self.service)
        status = (obj or {}).get("status") or {}
        return str(status.get("url") or (status.get("address") or {}).get("url") or "")

    # ----- deploying
    def _manifest(self, stable: Served | None, candidate: Served | None, percent: int | None) -> dict[str, Any]:
        return isvc.build_inference_service(self.target, self.service, stable=stable, candidate=candidate,
                                            percent=percent, run_id=self.run_id, task=self.task)

    def _held(self, call: Callable[[], dict[str, Any]], what: str) -> dict[str, Any]:
        """``call()`` with SIGTERM held until it returns; then a held SIGTERM rolls back and stops the step."""
        with deferred_sigterm() as term:
            obj = call()
        if term.fired:
            log.warning("SIGTERM arrived while %s: rolling back", what)
            self.rollback()
            raise Terminated(f"received SIGTERM while {what}; rolled back")
        return obj

    def deploy_canary(self, candidate: Served, percent: int) -> RunningJob:
        before = self._read()
        if before is not None and isvc.is_raw(before) != self.raw:
            raise RolloutFailure(f"{self.launcher.ref(self.service)} runs in "
                                 f"{'Standard (raw)' if isvc.is_raw(before) else 'Knative'} mode; the config asks "
                                 f"for {self.target.mode}: KServe cannot switch a service's mode")
        stable = isvc.deployed(before).stable if before is not None else None
        self._urls = {}
        if stable is None:  # first deployment: nothing serves, the candidate takes everything
            self._rollout = _Rollout(None, candidate, 100)
            manifest = self._manifest(None, candidate, None)
            self._held(lambda: self.launcher.apply(manifest), f"creating {self.launcher.ref(self.service)}")
            exp = Expectation(self.raw, candidate.version, 100, True)
        else:
            if percent >= 100 or percent <= 0:
                raise ValueError(f"a canary over a stable model needs 0 < percent < 100, got {percent}")
            self._rollout = _Rollout(stable, candidate, percent)
            desired = self._manifest(stable, candidate, percent)
            assert before is not None
            if self.raw:
                body: dict[str, Any] = {"spec": {"canary": desired["spec"]["canary"]}}
            else:
                predictor = {"serviceAccountName": None, **desired["spec"]["predictor"]}
                ours = {k: v for k, v in desired["metadata"]["annotations"].items()}
                body = {"metadata": {"annotations": ours}, "spec": {"predictor": predictor}}
            after = self._held(lambda: self.launcher.patch(self.service, body),
                               f"patching {self.launcher.ref(self.service)}")
            exp = Expectation(self.raw, candidate.version, percent, False, isvc.canary_name(candidate.version),
                              _revisions(before), _template(before) != _template(after))
        self._exp = exp
        log.info("deployed %s to %s at %d%%", candidate.version, self.launcher.ref(self.service), exp.percent)
        policy = self.target.wait.policy(self.cfg.readiness_timeout_s, transient_api_error)
        return CanaryReadiness(self, exp, policy)

    def _current(self, obj: dict[str, Any]) -> _Rollout | None:
        if self._rollout is not None:
            return self._rollout
        found = isvc.deployed(obj)
        if found.canary is None:
            return None
        return _Rollout(found.stable, found.canary, found.percent or 0)

    def promote(self) -> None:
        obj = self._read()
        rollout = self._current(obj) if obj is not None else None
        if obj is None or rollout is None:
            raise RolloutFailure(f"nothing to promote: {self.launcher.ref(self.service)} has no canary")
        body: dict[str, Any] = {"spec": {"predictor": {"canaryTrafficPercent": 100}}}
        if self.raw and not rollout.first:
            desired = self._manifest(rollout.stable, rollout.candidate, 100)
            body = {"spec": {"predictor": {"serviceAccountName": None, **desired["spec"]["predictor"]},
                             "canary": desired["spec"]["canary"]}}
        self.note(self.launcher.patch(self.service, body), "promoted")
        self._urls = {}
        log.info("promoted %s on %s", rollout.candidate.version, self.launcher.ref(self.service))

    def rollback(self) -> None:
        obj = self._read()
        rollout = self._current(obj) if obj is not None else None
        if obj is None or rollout is None:
            return
        self._urls = {}
        spec = obj.get("spec") or {}
        predictor = spec.get("predictor") or {}
        version = str((predictor.get("annotations") or {}).get(isvc.MODEL_VERSION_ANNOTATION))
        if rollout.first:
            if version == rollout.candidate.version:
                self.launcher.delete(self.service)
                self.note(None, "rolled back: first deployment deleted")
            return
        body: dict[str, Any] = {}
        if not self.raw and version == rollout.candidate.version and predictor.get("canaryTrafficPercent") != 0:
            body = {"spec": {"predictor": {"canaryTrafficPercent": 0}}}
        if self.raw:
            if spec.get("canary"):
                body = {"spec": {"canary": None}}
            if rollout.stable is not None and version != rollout.stable.version:  # a promote that landed
                desired = self._manifest(rollout.stable, rollout.candidate, 0)
                body.setdefault("spec", {})["predictor"] = {"serviceAccountName": None,
                                                            **desired["spec"]["predictor"]}
        if body:
            self.note(self.launcher.patch(self.service, body), "rolled back")
            log.info("rolled back %s on %s", rollout.candidate.version, self.launcher.ref(self.service))

    # ----- traffic
    def _url(self, obj: dict[str, Any], which: Which) -> str:
        found = isvc.deployed(obj)
        ns = self.target.namespace
        if self.raw:
            # a canary has its own predictor Service; a first deployment's candidate is the predictor itself
            canary = found.canary if found.stable is not None else None
            name = isvc.canary_name(canary.version) if which == "candidate" and canary else ""
            return f"http://{isvc.predictor_service(self.service, name)}.{ns}.svc.cluster.local"
        pred = _predictor_status(obj)
        tag = "latest" if which == "candidate" else "prev"
        entry = next((e for e in pred.get("traffic") or [] if e.get("tag") == tag and e.get("url")), None)
        if entry is not None and found.canary is not None:
            return cluster_local(str(entry["url"]), ns)
        if found.canary is None:  # no canary: the service's one model answers (a first deployment)
            address = (pred.get("address") or {}).get("url") or ((obj.get("status") or {}).get("address") or {}
                                                                 ).get("url")
            if address:
                return cluster_local(str(address), ns)
        raise RolloutFailure(f"no {tag!r} route for the {which} model in {self.launcher.ref(self.service)}'s "
                             f"status (traffic: {_traffic_text(list(pred.get('traffic') or []))})")

    def predict(self, which: Which, rows: Sequence[dict[str, Any]]) -> list[float]:
        if which not in self._urls:
            obj = self._read()
            if obj is None:
                raise RolloutFailure(f"{self.launcher.ref(self.service)} does not exist")
            self._urls[which] = self._url(obj, which)
        url = f"{self._urls[which]}/v1/models/{self.service}:predict"
        return probabilities(self.transport(url, {"instances": list(rows)}), len(rows))

    def observed_traffic(self, probe: Sequence[dict[str, Any]]) -> dict[str, float]:
        """From the status (the answers do not name the model): Knative's traffic entries by revision, the
        candidate's revision being the latest created one once it is new; Standard mode's ready canary entries."""
        obj = self._read()
        if obj is None:
            return {}
        found, rollout = isvc.deployed(obj), self._current(obj)
        cand = rollout.candidate.version if rollout else ""
        stab = rollout.stable.version if rollout and rollout.stable else ""
        shares: dict[str, float] = {}

        def add(version: str, percent: float) -> None:
            if percent:
                shares[version or "unknown"] = shares.get(version or "unknown", 0.0) + percent / 100

        if self.raw:
            if rollout is None or rollout.first:
                add(cand or (found.stable.version if found.stable else ""), 100)
                return shares
            status = obj.get("status") or {}
            entry = next((e for e in status.get("canaryStatuses") or []
                          if e.get("name") == isvc.canary_name(cand)), None)
            cut = int(entry.get("trafficPercent") or 0) if entry and entry.get("ready") else 0
            add(cand, cut)
            add(stab, 100 - cut)
            return shares
        pred = _predictor_status(obj)
        created = str(pred.get("latestCreatedRevision") or "")
        exp = self._exp
        new = bool(created) and not (exp is not None and exp.new_revision and created in exp.known_revisions)
        for e in pred.get("traffic") or []:
            is_cand = new and e.get("revisionName") == created
            add(cand if is_cand else stab, float(e.get("percent") or 0))
        return shares
