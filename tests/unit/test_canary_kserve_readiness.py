"""KServe readiness rules one at a time (``assess`` on recorded-style statuses), response parsing and addresses:
each rule alone keeps a candidate from counting as ready."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components._core.jobs import JobPhase
from components.serving.canary.kserve import Expectation, assess, cluster_local, probabilities
from components.serving.inference_service import MODEL_VERSION_ANNOTATION

OLD, NEW = "churn-predictor-00001", "churn-predictor-00002"
KNATIVE = Expectation(False, "bbbb", 20, False, "c-bbbb", frozenset({OLD}), True)
RAW = Expectation(True, "bbbb", 20, False, "c-bbbb")


def cond(kind: str, status: str = "True", reason: str = "", message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": status, **({"reason": reason} if reason else {}),
            **({"message": message} if message else {})}


def knative_ready() -> dict[str, Any]:
    """A Knative canary at 20 %, ready in every respect (shaped like KServe's docs' canary example)."""
    return {
        "metadata": {"generation": 3, "annotations": {"serving.kserve.io/deploymentMode": "Knative"}},
        "spec": {"predictor": {"annotations": {MODEL_VERSION_ANNOTATION: "bbbb"}, "canaryTrafficPercent": 20,
                               "model": {"storageUri": "gs://b"}}},
        "status": {
            "observedGeneration": 3,
            "conditions": [cond("PredictorConfigurationReady"), cond("PredictorReady"), cond("Ready")],
            "components": {"predictor": {
                "latestCreatedRevision": NEW, "latestReadyRevision": NEW, "latestRolledoutRevision": OLD,
                "traffic": [
                    {"latestRevision": True, "percent": 20, "revisionName": NEW, "tag": "latest",
                     "url": "http://latest-churn-predictor.ml.example.com"},
                    {"latestRevision": False, "percent": 80, "revisionName": OLD, "tag": "prev",
                     "url": "http://prev-churn-predictor.ml.example.com"}]}},
            "modelStatus": {"transitionStatus": "UpToDate"}}}


def raw_ready() -> dict[str, Any]:
    return {
        "metadata": {"generation": 4, "annotations": {"serving.kserve.io/deploymentMode": "Standard"}},
        "spec": {"predictor": {"annotations": {MODEL_VERSION_ANNOTATION: "aaaa"}, "canaryTrafficPercent": 100},
                 "canary": [{"trafficPercent": 20, "predictor": {"name": "c-bbbb"}}]},
        "status": {"observedGeneration": 1,  # the stable Deployment's counter: never compared
                   "conditions": [cond("PredictorReady"), cond("Ready"), cond("CanaryPredictorReady")],
                   "canaryStatuses": [{"name": "c-bbbb", "ready": True, "trafficPercent": 20}]}}


def test_a_fully_ready_canary_succeeds_in_both_modes() -> None:
    assert assess(knative_ready(), KNATIVE)[0] is JobPhase.SUCCEEDED
    assert assess(raw_ready(), RAW)[0] is JobPhase.SUCCEEDED


def mutate(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    *keys, last = path.split("|" if "|" in path else ".")  # "|" separates paths whose keys hold dots
    node: Any = out
    for k in keys:
        node = node[int(k)] if isinstance(node, list) else node[k]
    if value is None:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


PRED = "status.components.predictor"


@pytest.mark.parametrize("path,value,why", [
    ("status.observedGeneration", 2, "observedGeneration 2 < generation 3"),
    (f"{PRED}.latestReadyRevision", OLD, f"revision {NEW} is not ready (latest ready: {OLD})"),
    (f"{PRED}.latestCreatedRevision", OLD, "no revision of the candidate yet"),
    ("status.conditions.2", cond("Ready", "Unknown", "NotConfigured"), "Ready is Unknown (NotConfigured)"),
    (f"{PRED}.traffic.0.revisionName", OLD, "traffic not in place"),
    (f"{PRED}.traffic.0.percent", 10, "traffic not in place"),
    (f"{PRED}.traffic.1.tag", None, "traffic not in place"),
    (f"{PRED}.traffic.1.percent", 100, "traffic not in place"),
])
def test_each_knative_rule_alone_keeps_the_candidate_pending(path: str, value: Any, why: str) -> None:
    phase, message, _ = assess(mutate(knative_ready(), path, value), KNATIVE)
    assert phase is JobPhase.PENDING and why in message


@pytest.mark.parametrize("path,value,why", [
    ("status.canaryStatuses.0.ready", False, "has no available replica"),
    ("status.canaryStatuses.0.trafficPercent", 10, "reported at 10% (want 20%)"),
    ("status.canaryStatuses.0.name", "c-aaaa", "has not reported canary c-bbbb"),
    ("status.conditions.2", cond("CanaryPredictorReady", "False", "CanariesNotReady"), "CanaryPredictorReady is False"),
    ("status.conditions.1", cond("Ready", "False", "IngressNotReady"), "Ready is False"),
])
def test_each_standard_mode_rule_alone_keeps_the_candidate_pending(path: str, value: Any, why: str) -> None:
    phase, message, _ = assess(mutate(raw_ready(), path, value), RAW)
    assert phase is JobPhase.PENDING and why in message


def test_standard_mode_never_reads_observed_generation() -> None:
    assert assess(mutate(raw_ready(), "status.observedGeneration", 99), RAW)[0] is JobPhase.SUCCEEDED


def test_a_first_knative_deployment_wants_the_latest_revision_at_100_and_no_prev() -> None:
    exp = Expectation(False, "bbbb", 100, True)
    first = mutate(knative_ready(), f"{PRED}.traffic", [{"latestRevision": True, "percent": 100,
                                                         "revisionName": NEW, "tag": "latest"}])
    assert assess(first, exp)[0] is JobPhase.SUCCEEDED
    assert assess(knative_ready(), exp)[0] is JobPhase.PENDING


def test_a_failed_candidate_revision_fails_but_an_older_failure_does_not() -> None:
    failed = cond("PredictorReady", "False", "RevisionFailed", f'Revision "{NEW}" failed with message: exit 1.')
    phase, message, _ = assess(mutate(knative_ready(), "status.conditions.1", failed), KNATIVE)
    assert phase is JobPhase.FAILED and f"revision {NEW} failed" in message
    older = cond("PredictorReady", "False", "RevisionFailed", f'Revision "{OLD}" failed with message: exit 1.')
    assert assess(mutate(knative_ready(), "status.conditions.1", older), KNATIVE)[0] is JobPhase.PENDING
    stale = mutate(mutate(knative_ready(), "status.conditions.1", failed), "status.observedGeneration", 2)
    assert assess(stale, KNATIVE)[0] is JobPhase.PENDING  # a failure reported before the controller saw the patch


def test_a_model_that_fails_to_load_is_flagged_only_for_the_candidates_revision() -> None:
    crashing = mutate(knative_ready(), f"{PRED}.latestReadyRevision", OLD)
    crashing["status"]["modelStatus"] = {"transitionStatus": "BlockedByFailedLoad",
                                         "lastFailureInfo": {"reason": "ModelLoadFailed", "exitCode": 1}}
    phase, message, failed_load = assess(crashing, KNATIVE)
    assert phase is JobPhase.PENDING and failed_load and "ModelLoadFailed" in message
    assert assess(mutate(crashing, f"{PRED}.latestCreatedRevision", OLD), KNATIVE)[2] is False


@pytest.mark.parametrize("obj,exp,why", [
    (None, KNATIVE, "no longer exists"),
    (mutate(knative_ready(), "metadata.deletionTimestamp", "2026-01-01T00:00:00Z"), KNATIVE, "being deleted"),
    (mutate(knative_ready(), f"spec|predictor|annotations|{MODEL_VERSION_ANNOTATION}", "cccc"), KNATIVE,
     "deploys model cccc"),
    (mutate(raw_ready(), "spec.canary", []), RAW, "no longer in the spec"),
])
def test_a_candidate_removed_by_someone_else_is_cancelled(obj: dict[str, Any] | None, exp: Expectation,
                                                          why: str) -> None:
    phase, message, _ = assess(obj, exp)
    assert phase is JobPhase.CANCELLED and why in message


@pytest.mark.parametrize("payload,expected", [
    ({"predictions": [0.25, 1]}, [0.25, 1.0]),
    ({"predictions": [{"probability": 0.7, "class": 1}, {"probability": 0.1, "class": 0}]}, [0.7, 0.1]),
])
def test_predictions_are_read_as_probabilities(payload: dict[str, Any], expected: list[float]) -> None:
    assert probabilities(payload, 2) == expected


@pytest.mark.parametrize("payload", [{"predictions": [0.5]}, {"outputs": [0.1, 0.2]}, [0.1, 0.2],
                                     {"predictions": [True, 0.2]}, {"predictions": [{"class": 1}, 0.2]}])
def test_malformed_answers_are_refused(payload: Any) -> None:
    with pytest.raises(ValueError):
        probabilities(payload, 2)


def test_route_urls_become_in_cluster_addresses() -> None:
    assert cluster_local("http://prev-churn-predictor.ml.example.com", "ml") == \
        "http://prev-churn-predictor.ml.svc.cluster.local"
    assert cluster_local("http://churn-predictor.ml.svc.cluster.local", "ml") == \
        "http://churn-predictor.ml.svc.cluster.local"
