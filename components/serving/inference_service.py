"""Pure builder of the KServe InferenceService that serves the catalog's models, and its inverse.

Config in, sorted dict out. One function renders every state of a rollout in either deployment mode (arguments
→ the Knative (serverless) spec; the Standard (raw) spec):

- first deployment, not yet promoted (``stable=None, candidate=C, percent=None``): predictor C; predictor C.
- serving S (``stable=S, candidate=None``): predictor S with ``canaryTrafficPercent: 100``; the same.
- canary C over S at N % (``stable=S, candidate=C, percent=N``): predictor C at ``canaryTrafficPercent: N``, the
  previous model S in an annotation; predictor S and ``canary: [{trafficPercent: N, predictor: C}]``.
- C promoted (``percent=100``): predictor C at 100; predictor C, the canary entry kept at 100.
- C rolled back (``percent=0``): predictor C at 0 (all traffic on the ``prev`` revision); predictor S, no canary.

Knative mode splits traffic between the latest revision and the last one rolled out to 100 % (KServe's
``ksvc_reconciler.go``), so the candidate is *the* predictor and the stable model lives in the previous revision;
the ``enable-tag-routing`` annotation gives each its own URL (tags ``latest`` and ``prev``). Standard mode (KServe
≥ 0.20) keeps the stable model in ``spec.predictor`` and runs each ``spec.canary`` entry as its own Deployment and
Service ``{service}-{canary name}-predictor``. ``canaryTrafficPercent: 100`` marks a promoted model in both modes
(Standard mode ignores the field; only ``ksvc_reconciler.go`` reads it), so a first deployment that was never
promoted is told apart from one that was. Annotations on the InferenceService reach every pod template (KServe's
``buildPredictorResources``), so a change of them rolls pods: the rollout writes them only together with a new
model. ``deployed`` reads the models back from an object.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from components._core.k8s_meta import canonical, standard_metadata
from components._core.podsecurity import restrict_pod_spec
from components.serving.target import KServeTarget, Served

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
COMPONENT = "serving"
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
# KServe 0.20+ names the modes Knative and Standard; the defaulting webhook rewrites the deprecated Serverless /
# RawDeployment to them (inference_service_defaults.go) and the canary validator compares with "Standard".
KNATIVE, STANDARD = "Knative", "Standard"
RAW_MODES = frozenset({STANDARD, "RawDeployment"})
TAG_ROUTING = "serving.kserve.io/enable-tag-routing"
MODEL_VERSION_ANNOTATION = "kfp-component-catalog.io/model-version"
PREVIOUS_MODEL_ANNOTATION = "kfp-component-catalog.io/previous-model"
MODEL_CONTAINER = "kserve-container"
POD_SELECTOR_LABEL = "serving.kserve.io/inferenceservice"  # KServe labels every predictor pod with its service
# What KServe 0.21 can fetch: its default ClusterStorageContainer's formats (config/storagecontainers), plus pvc://
# and oci:// which it mounts itself; anything else fails in the controller ("StorageURI not supported").
STORAGE_SCHEMES = ("gs://", "s3://", "pvc://", "oci://", "hdfs://", "webhdfs://", "hf://", "http://", "https://")


def predictor_service(service: str, predictor_name: str = "") -> str:
    """The Kubernetes Service of a predictor in Standard mode: KServe's ``constants.PredictorServiceName``
    (``{service}-predictor``, or ``{service}-{name}-predictor`` for a named canary predictor)."""
    return f"{service}-{predictor_name}-predictor" if predictor_name else f"{service}-predictor"


def canary_name(version: str) -> str:
    """The Standard-mode canary predictor name of model ``version``: ``c-`` and 8 characters of the version (or of
    its hash when it is not plain lowercase hex/alphanumerics), so ``{service}-{name}-predictor`` fits 63
    characters for every service name the config allows (42) and each candidate gets a Deployment of its own."""
    part = version.lower()
    if not re.fullmatch(r"[a-z0-9]{8,}", part):
        part = hashlib.sha256(version.encode()).hexdigest()
    return f"c-{part[:8]}"


def _ref(served: Served) -> str:
    return json.dumps({"model_uri": served.model_uri, "version": served.version}, sort_keys=True,
                      separators=(",", ":"))


def _model(target: KServeTarget, served: Served) -> dict[str, Any]:
    if not served.model_uri.startswith(STORAGE_SCHEMES) or not served.model_uri.split("://", 1)[1].strip("/"):
        raise ValueError(f"model URI {served.model_uri!r} is not a storage URI KServe can fetch "
                         f"({', '.join(STORAGE_SCHEMES)}): a cluster cannot read a path on this machine")
    amounts = {"cpu": target.cpu, "memory": target.memory}
    return {"modelFormat": {"name": target.model_format}, "resources": {"limits": dict(amounts),
            "requests": dict(amounts)}, "runtime": target.runtime, "storageUri": served.model_uri}


def _predictor(target: KServeTarget, served: Served, *, replicas: bool, name: str = "") -> dict[str, Any]:
    """A predictor for ``served`` with restricted pod security on the pod and on the model container."""
    # The model container is the runtime's kserve-container (KServe merges the two by that name); a canary's
    # model must name it (the CRD requires it there).
    pod = restrict_pod_spec({"containers": [{"name": MODEL_CONTAINER, **_model(target, served)}]},
                            run_as_user=target.run_as_user)
    model = pod["containers"][0]
    predictor: dict[str, Any] = {"annotations": {MODEL_VERSION_ANNOTATION: served.version}, "model": model,
                                 "securityContext": pod["securityContext"]}
    if name:
        predictor["name"] = name
    if replicas:  # a Standard-mode canary runs fixed replicas: the validator rejects maxReplicas there
        predictor.update(minReplicas=target.min_replicas, maxReplicas=max(target.max_replicas, target.min_replicas))
    if target.service_account:
        predictor["serviceAccountName"] = target.service_account
    return predictor


def _check(stable: Served | None, candidate: Served | None, percent: int | None) -> None:
    if stable is None and candidate is None:
        raise ValueError("an InferenceService needs a model: give stable, candidate or both")
    if percent is not None and not 0 <= percent <= 100:
        raise ValueError(f"percent must be within [0, 100], got {percent}")
    if stable is not None and candidate is not None and percent is None:
        raise ValueError("a canary needs its traffic percent")
    if (stable is None or candidate is None) and percent not in (None, 100):
        raise ValueError(f"percent {percent} needs both a stable model and a candidate")


def build_inference_service(target: KServeTarget, service: str, *, stable: Served | None,
                            candidate: Served | None, percent: int | None, run_id: str = "",
                            task: str = "") -> dict[str, Any]:
    """The InferenceService ``service`` in ``target.namespace`` for one rollout state (see the module table):
    ``percent`` is the candidate's share of the traffic, None for a first deployment not yet promoted.

    Every pod runs the catalog's ServingRuntime (``target.runtime``) with the restricted Pod Security settings,
    requests = limits, the configured service account and replica bounds. Raises ``ValueError`` for a state that
    does not exist or a model URI a cluster cannot fetch.
    """
    _check(stable, candidate, percent)
    raw = target.mode == "raw"
    meta = standard_metadata(service, target.namespace, run_id=run_id, task=task, component=COMPONENT)
    annotations = meta.setdefault("annotations", {})
    annotations[DEPLOYMENT_MODE] = STANDARD if raw else KNATIVE
    marker = None if stable is None and percent is None else 100
    spec: dict[str, Any]
    if raw:
        promoted = stable is not None and candidate is not None and percent == 100
        main = candidate if stable is None or promoted else stable
        assert main is not None
        spec = {"predictor": _predictor(target, main, replicas=True)}
        if stable is not None and candidate is not None and percent:
            entry = _predictor(target, candidate, replicas=False, name=canary_name(candidate.version))
            spec["canary"] = [{"predictor": entry, "trafficPercent": percent}]
    else:
        annotations[TAG_ROUTING] = "true"
        latest = candidate or stable
        assert latest is not None
        spec = {"predictor": _predictor(target, latest, replicas=True)}
        if stable is not None and candidate is not None:
            annotations[PREVIOUS_MODEL_ANNOTATION] = _ref(stable)
            marker = percent
    if marker is not None:
        spec["predictor"]["canaryTrafficPercent"] = marker
    return canonical({"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": spec})


@dataclass(frozen=True)
class Deployed:
    """The models an InferenceService holds, as ``build_inference_service`` wrote them (lineage not included)."""

    raw: bool
    stable: Served | None
    canary: Served | None
    percent: int | None  # the candidate's share the spec asks for; None: a first deployment not yet promoted


def _served(predictor: dict[str, Any]) -> Served:
    model = predictor.get("model") or {}
    version = str((predictor.get("annotations") or {}).get(MODEL_VERSION_ANNOTATION) or "")
    return Served(str(model.get("storageUri") or ""), version)


def is_raw(obj: dict[str, Any]) -> bool:
    """The object runs in Standard (raw) mode."""
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(DEPLOYMENT_MODE) in RAW_MODES


def deployed(obj: dict[str, Any]) -> Deployed:
    """The stable model, the canary in progress (if any) and the canary's percent of an InferenceService built by
    ``build_inference_service`` (the inverse of its table)."""
    spec = obj.get("spec") or {}
    predictor = spec.get("predictor") or {}
    main = _served(predictor)
    marker = predictor.get("canaryTrafficPercent")
    raw = is_raw(obj)
    if marker is None:  # first deployment, not yet promoted: nothing serves for sure
        return Deployed(raw, None, main, None)
    if raw:
        entries = spec.get("canary") or []
        if not entries:
            return Deployed(raw, main, None, 100)
        entry = entries[0]
        cand, pct = _served(entry.get("predictor") or {}), int(entry.get("trafficPercent", 0))
        if cand == main or pct == 0:  # promoted (entry kept at 100 while the stable rolls) or idle
            return Deployed(raw, main, None, 100 if cand == main else 0)
        return Deployed(raw, main, cand, pct)
    prev_text = ((obj.get("metadata") or {}).get("annotations") or {}).get(PREVIOUS_MODEL_ANNOTATION)
    previous = Served.from_dict(json.loads(prev_text)) if prev_text else None
    pct = int(marker)
    if pct == 100 or previous is None:
        return Deployed(raw, main, None, 100)
    if pct == 0:
        return Deployed(raw, previous, None, 0)
    return Deployed(raw, previous, main, pct)
