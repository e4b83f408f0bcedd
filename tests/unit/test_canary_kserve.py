"""Canary rollouts on KServe through the rollout state machine (``run_rollout``) with the real ``KServeServing``
backend, against the fake apiserver and a fake KServe controller that reports scripted status sequences (one
controller step per poll), in both modes: Knative (``canaryTrafficPercent``) and Standard (``spec.canary``).

Every failure ends rolled back (the InferenceService at 0 %, without its canary, or deleted on a first
deployment) with the reason recorded; every success promoted (100 %). Every InferenceService written to the
apiserver is validated against the vendored CRD schema, status included."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from components._core import k8s
from components._core.signals import Terminated
from components.serving.canary.kserve import KServeServing, read_lineage
from components.serving.canary.rollout import RolloutConflict, RolloutRecord, run_rollout
from components.serving.inference_service import MODEL_VERSION_ANNOTATION, canary_name
from components.serving.target import DeployConfig, Served
from tests.fakes.clock import ManualClock
from tests.fakes.k8s import FakeCoreV1Api, FakeCustomObjectsApi, api_error
from tests.fakes.kserve import PLURAL, FakeKServe, failing, tabular
from tests.schemas import INFERENCESERVICE, validate_crd

NS, SERVICE = "ml", "churn"
A = Served("gs://bucket/models/a", "aaaaaaaaaaaa")
B = Served("gs://bucket/models/b", "bbbbbbbbbbbb")
C = Served("gs://bucket/models/c", "cccccccccccc")
ROWS = [{"x": float(i)} for i in range(40)]
LABELS = [i % 2 for i in range(40)]
MODES = ["serverless", "raw"]


class Cluster:
    """The fake apiserver with KServe, handed to the backend as its kubeconfig's cluster (``default_clients``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
        self.mode = mode
        self.core = FakeCoreV1Api()
        self.api = FakeCustomObjectsApi(self.core)
        self.kserve = FakeKServe(self.api, NS)
        self.kserve.models = {A.model_uri: tabular(0.9), B.model_uri: tabular(0.9), C.model_uri: tabular(0.9)}
        self.sigterm_at: int | None = None
        self.clock = ManualClock(on_sleep=self._slept)
        self.validated = 0
        monkeypatch.setattr(k8s, "default_clients", lambda: (self.api, self.core))
        for method in ("create_namespaced_custom_object", "patch_namespaced_custom_object",
                       "patch_namespaced_custom_object_status"):
            self._validate_after(method)

    def _validate_after(self, method: str) -> None:
        call = getattr(self.api, method)

        def checked(*args: Any, **kwargs: Any) -> Any:
            out = call(*args, **kwargs)
            validate_crd(out, INFERENCESERVICE)
            self.validated += 1
            return out

        setattr(self.api, method, checked)

    def _slept(self, n: int) -> None:
        self.kserve.tick()
        if self.sigterm_at is not None and n == self.sigterm_at:
            os.kill(os.getpid(), signal.SIGTERM)

    def config(self, **kw: Any) -> DeployConfig:
        wait = {"poll_interval_s": 5, "deadline_grace_s": 0}
        return DeployConfig.parse({"backend": "kubeflow", "service": SERVICE, "canary_percent": 20,
                                   "readiness_timeout_s": 60, "smoke": {"requests": 20}, "compare": {"rows": 40},
                                   "traffic_probe": 0, "kserve": {"mode": self.mode, "namespace": NS, "wait": wait},
                                   **kw})

    def backend(self, **kw: Any) -> KServeServing:
        return KServeServing.from_config(self.config(**kw), transport=self.kserve.post, clock=self.clock.clock(),
                                         run_id="run-1", task="deploy", lineage_reader=no_lineage)

    def rollout(self, candidate: Served, *steps: str, **kw: Any) -> RolloutRecord:
        self.kserve.plan.clear()
        self.kserve.script(*steps)
        return run_rollout(self.backend(**kw), candidate, self.config(**kw), ROWS, LABELS, clock=self.clock.clock())

    def serve(self, model: Served) -> None:
        """A first deployment of ``model``, promoted (the stable model of the scenarios)."""
        record = self.rollout(model, "pending", "ready")
        assert record.promoted, record.reasons

    def isvc(self) -> dict[str, Any] | None:
        found = self.api.stored(PLURAL)
        return found[0] if found else None


@pytest.fixture(params=MODES)
def cluster(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    cluster = Cluster(monkeypatch, request.param)
    yield cluster
    for obj in cluster.api.stored(PLURAL):
        validate_crd(obj, INFERENCESERVICE)


def no_lineage(uri: str, version: str) -> dict[str, Any]:
    """Model cards live in the bucket the cluster reads; tests never reach it."""
    return {}


def version_of(predictor: dict[str, Any]) -> str:
    return str(predictor["annotations"][MODEL_VERSION_ANNOTATION])


def assert_rolled_back(cluster: Cluster, record: RolloutRecord, reason: str, stable: Served = A) -> None:
    assert record.decision == "rolled_back" and reason in " ".join(record.reasons), record.reasons
    assert record.states[-1]["state"] == "rollback" and "promote" not in [s["state"] for s in record.states]
    obj = cluster.isvc()
    assert obj is not None
    predictor = obj["spec"]["predictor"]
    if cluster.mode == "serverless":  # KServe's rollback: the candidate's revision at 0 %, prev takes all
        assert predictor["canaryTrafficPercent"] == 0 and version_of(predictor) == B.version
    else:
        assert "canary" not in obj["spec"] and version_of(predictor) == stable.version
    assert cluster.backend().stable() == Served(stable.model_uri, stable.version)
    assert cluster.backend().canary() is None


def assessments(record: RolloutRecord) -> list[str]:
    return [s["assessment"] for s in record.statuses if "assessment" in s]


# ---------------------------------------------------------------- success


def test_a_first_deployment_takes_all_traffic_and_is_promoted(cluster: Cluster) -> None:
    record = cluster.rollout(A, "pending", "ready")
    assert record.promoted and record.stable is None and record.canary_percent == 100
    obj = cluster.isvc()
    assert obj is not None and obj["spec"]["predictor"]["canaryTrafficPercent"] == 100
    assert record.traffic == {A.version: 1.0}
    assert cluster.backend().stable() == A and cluster.backend().canary() is None
    assert any(a.startswith("Succeeded") for a in assessments(record))
    assert cluster.validated >= 3


def test_a_good_candidate_is_deployed_at_n_percent_checked_and_promoted(cluster: Cluster) -> None:
    cluster.serve(A)
    record = cluster.rollout(B, "pending", "ready")
    assert record.promoted, record.reasons
    assert [s["state"] for s in record.states] == ["deploy", "ready", "smoke", "compare", "traffic", "promote"]
    assert record.traffic == {B.version: 0.2, A.version: 0.8}
    obj = cluster.isvc()
    assert obj is not None
    predictor = obj["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 100 and version_of(predictor) == B.version
    if cluster.mode == "raw":  # the stable predictor took the candidate; its canary entry holds 100 %
        assert obj["spec"]["canary"][0]["trafficPercent"] == 100
    assert cluster.backend().stable() == Served(B.model_uri, B.version) and cluster.backend().canary() is None
    assert cluster.backend().endpoint() == f"http://churn.{NS}.example.com"
    # the smoke test and the comparison reached each model at its own address
    hosts = {host: uri for host, uri in cluster.kserve.requests[-60:]}
    candidate_host = ("latest-churn-predictor" if cluster.mode == "serverless"
                      else f"churn-{canary_name(B.version)}-predictor")
    stable_host = "prev-churn-predictor" if cluster.mode == "serverless" else "churn-predictor"
    assert hosts[candidate_host] == B.model_uri and hosts[stable_host] == A.model_uri
    # after the controller has caught up, the service answers with the candidate only
    cluster.kserve.tick()
    main = f"http://churn-predictor.{NS}.svc.cluster.local/v1/models/churn:predict"
    for _ in range(5):
        cluster.kserve.post(main, {"instances": ROWS[:1]})
    assert {uri for _, uri in cluster.kserve.requests[-5:]} == {B.model_uri}


def test_the_record_holds_every_status_seen_with_its_assessment(cluster: Cluster) -> None:
    cluster.serve(A)
    record = cluster.rollout(B, "pending", "pending", "ready")
    seen = assessments(record)
    assert seen[0].startswith("Pending") and seen[-2].startswith("Succeeded") and seen[-1] == "promoted"
    assert any(s.get("reads", 1) > 1 for s in record.statuses)  # repeated statuses are counted, not copied
    assert all("generation" in s or s == {"exists": False} for s in record.statuses)
    json.dumps(record.to_dict())


def test_transient_api_errors_while_waiting_are_retried(cluster: Cluster) -> None:
    cluster.serve(A)
    cluster.api.fail_next("get", api_error(503, "Service Unavailable"), times=3)
    record = cluster.rollout(B, "pending", "ready")
    assert record.promoted, record.reasons


# ---------------------------------------------------------------- readiness failures


def test_a_candidate_that_never_becomes_ready_is_rolled_back_at_the_deadline(cluster: Cluster) -> None:
    cluster.serve(A)
    record = cluster.rollout(B, "pending")
    assert_rolled_back(cluster, record, "did not finish within 60s")
    why = "is not ready" if cluster.mode == "serverless" else "has no available replica"
    assert why in assessments(record)[-2]


def test_a_crash_looping_candidate_is_not_ready_while_ready_stays_true(cluster: Cluster) -> None:
    cluster.serve(A)
    record = cluster.rollout(B, "crashloop")
    ready_true = [s for s in record.statuses if {"type": "Ready", "status": "True"} in s.get("conditions", [])]
    assert ready_true and all(not a.startswith("Succeeded") for a in assessments(record))
    if cluster.mode == "serverless":  # KServe's modelStatus says the candidate's pods fail to load the model
        assert_rolled_back(cluster, record, "model fails to load: reason ModelLoadFailed, exitCode 1")
        assert "(in 3 reads in a row)" in record.reasons[0]
    else:  # KServe 0.21 reports no canary failure: the deadline catches it
        assert_rolled_back(cluster, record, "did not finish within 60s")


def test_a_never_ready_candidates_share_silently_stays_on_the_stable_model(cluster: Cluster) -> None:
    cluster.serve(A)
    backend = cluster.backend()
    job = backend.deploy_canary(B, 20)
    cluster.kserve.script("crashloop")
    for _ in range(2):
        cluster.kserve.tick()
    assert job.status().phase.value == "Pending"
    assert backend.observed_traffic([]) == {A.version: 1.0}
    url = f"http://churn-predictor.{NS}.svc.cluster.local/v1/models/churn:predict"
    if cluster.mode == "serverless":
        for _ in range(10):
            cluster.kserve.post(url, {"instances": ROWS[:1]})
        assert {uri for _, uri in cluster.kserve.requests[-10:]} == {A.model_uri}


def test_a_failed_revision_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster(monkeypatch, "serverless")
    cluster.serve(A)
    record = cluster.rollout(B, "pending", "revision_failed")
    assert_rolled_back(cluster, record, 'revision churn-predictor-00002 failed: Revision "churn-predictor-00002"')
    assert cluster.clock.t < 60


def test_a_status_left_over_from_before_the_patch_is_never_taken_for_readiness(cluster: Cluster) -> None:
    cluster.serve(A)
    record = cluster.rollout(B, "stale")
    assert_rolled_back(cluster, record, "did not finish within 60s")
    stale = [s for s in record.statuses if s.get("assessment", "").startswith("Pending")]
    assert stale and all({"type": "Ready", "status": "True"} in s["conditions"] for s in stale)
    why = "status is older than the spec" if cluster.mode == "serverless" else "has not reported canary"
    assert all(why in s["assessment"] for s in stale)


def test_a_stale_status_delays_readiness_until_the_controller_catches_up(cluster: Cluster) -> None:
    cluster.serve(A)
    record = cluster.rollout(B, "stale", "stale", "pending", "ready")
    assert record.promoted, record.reasons
    seen = assessments(record)
    assert seen.index(next(s for s in seen if s.startswith("Succeeded"))) >= 2


def test_traffic_that_did_not_move_is_not_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster(monkeypatch, "serverless")
    cluster.serve(A)
    record = cluster.rollout(B, "pending", "traffic_stuck")
    assert_rolled_back(cluster, record, "did not finish within 60s")
    assert "traffic not in place: want churn-predictor-00002 20% and prev 80%" in assessments(record)[-2]


@pytest.mark.parametrize("step", ["revision_failed", "crashloop"])
def test_a_failed_first_deployment_is_deleted(monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    cluster = Cluster(monkeypatch, "serverless" if step == "revision_failed" else "raw")
    record = cluster.rollout(A, "pending", step)
    assert record.decision == "rolled_back" and record.stable is None
    reason = "failed: Revision" if step == "revision_failed" else "its model fails to load"
    assert reason in record.reasons[0]
    assert cluster.isvc() is None and cluster.api.deletions == [(SERVICE, "Foreground")]
    assert cluster.backend().stable() is None


# ---------------------------------------------------------------- smoke test, comparison, conflicts, SIGTERM


def test_a_candidate_failing_its_smoke_test_is_rolled_back(cluster: Cluster) -> None:
    cluster.serve(A)
    cluster.kserve.models[B.model_uri] = failing(4, tabular(0.9))
    record = cluster.rollout(B, "pending", "ready")
    assert_rolled_back(cluster, record, "smoke test: 5 of 20 requests failed")
    assert "500 Internal Server Error" in record.reasons[0]


def test_a_candidate_worse_than_the_stable_model_is_rolled_back(cluster: Cluster) -> None:
    cluster.serve(A)
    cluster.kserve.models[B.model_uri] = tabular(0.1)
    record = cluster.rollout(B, "pending", "ready")
    assert_rolled_back(cluster, record, "comparison: candidate auc 0.0000 vs stable 1.0000")


def test_another_models_canary_is_refused_and_a_retry_takes_its_own_over(cluster: Cluster) -> None:
    cluster.serve(A)
    cluster.backend().deploy_canary(C, 20)  # a rollout that died without rolling back
    before = cluster.isvc()
    with pytest.raises(RolloutConflict, match=f"canary {C.version}"):
        cluster.rollout(B, "ready")
    assert cluster.isvc() == before
    record = cluster.rollout(C, "pending", "ready")
    assert record.promoted, record.reasons


def test_a_service_in_the_other_mode_is_not_touched(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster.serve(A)
    other = Cluster(monkeypatch, "raw" if cluster.mode == "serverless" else "serverless")
    other.api, other.kserve = cluster.api, cluster.kserve
    before = cluster.isvc()
    record = other.rollout(B, "ready")
    assert record.decision == "rolled_back" and "KServe cannot switch a service's mode" in record.reasons[0]
    after = cluster.isvc()
    assert before is not None and after is not None and after["spec"] == before["spec"]


def test_sigterm_while_waiting_for_readiness_rolls_back(cluster: Cluster) -> None:
    cluster.serve(A)
    cluster.sigterm_at = len(cluster.clock.sleeps) + 2
    with pytest.raises(Terminated):
        cluster.rollout(B, "pending")
    obj = cluster.isvc()
    assert obj is not None
    if cluster.mode == "serverless":
        assert obj["spec"]["predictor"]["canaryTrafficPercent"] == 0
    else:
        assert "canary" not in obj["spec"]
    assert cluster.backend().stable() == A and cluster.backend().canary() is None


def test_sigterm_during_the_smoke_test_rolls_back(cluster: Cluster) -> None:
    cluster.serve(A)
    model = tabular(0.9)
    calls = {"n": 0}

    def interrupted(rows: list[dict[str, Any]]) -> list[Any]:
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return model(rows)

    cluster.kserve.models[B.model_uri] = interrupted
    with pytest.raises(Terminated):
        cluster.rollout(B, "pending", "ready")
    assert cluster.backend().stable() == A and cluster.backend().canary() is None


def test_the_stable_models_lineage_comes_from_its_model_card(cluster: Cluster) -> None:
    cards = {A.model_uri: {"data_version": "2026-11-23", "metrics": {"test_auc": 0.97}}}
    cluster.serve(A)
    backend = KServeServing.from_config(cluster.config(), transport=cluster.kserve.post,
                                        lineage_reader=lambda uri, version: {**cards.get(uri, {}), "version": version})
    stable = backend.stable()
    assert stable is not None and stable.lineage == {"data_version": "2026-11-23", "metrics": {"test_auc": 0.97},
                                                     "version": A.version}


def test_lineage_is_read_from_the_card_and_is_empty_where_the_card_cannot_be_read() -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    card = {"weights_sha256": "a" * 64, "data_version": "2026-11-23", "metrics": {"test_auc": 0.97}}
    with fs.open("/kserve-canary/a/model_card.json", "w") as fh:
        json.dump(card, fh)
    try:
        found = read_lineage("memory://kserve-canary/a", "aaaaaaaaaaaa")
    finally:
        fs.rm("/kserve-canary/a", recursive=True)
    assert found["data_version"] == "2026-11-23" and found["version"] == "aaaaaaaaaaaa"
    assert found["metrics"] == {"test_auc": 0.97}
    assert read_lineage("memory://kserve-canary/missing", "x") == {}


def test_the_backend_table_builds_it_with_clients_made_on_first_use(cluster: Cluster) -> None:
    from components.serving.target import make_serving

    backend = make_serving(cluster.config(), transport=cluster.kserve.post, lineage_reader=no_lineage)
    assert isinstance(backend, KServeServing) and backend.stable() is None  # default_clients: the fake cluster
    assert backend.launcher.api is cluster.api and backend.launcher.core_api is cluster.core
