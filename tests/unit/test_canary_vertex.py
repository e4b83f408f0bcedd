"""Canary rollouts on a Vertex AI endpoint through the rollout state machine, with the real ``VertexServing``
backend and an in-memory endpoint that keeps Vertex's semantics (splits summing to 100, deployed model ids,
deploys that land later, errors for unknown ids)."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from components._core.images import image
from components._core.signals import Terminated
from components.serving.canary.backend import RolloutFailure
from components.serving.canary.rollout import RolloutConflict, RolloutRecord, run_rollout
from components.serving.canary.vertex import STABLE_LABEL, EndpointClient, VertexServing
from components.serving.target import DeployConfig, Served
from tests.fakes.clock import ManualClock
from tests.fakes.kserve import failing, tabular
from tests.fakes.vertex_endpoint import FakeVertexEndpoint

A = Served("gs://bucket/models/a", "aaaaaaaaaaaa")
B = Served("gs://bucket/models/b", "bbbbbbbbbbbb")
C = Served("gs://bucket/models/c", "cccccccccccc")
ROWS = [{"x": float(i)} for i in range(40)]
LABELS = [i % 2 for i in range(40)]


def lineage(uri: str, version: str) -> dict[str, Any]:
    return {"model_uri": uri, "version": version}


class Project:
    """The fake endpoint and a manual clock; ``sigterm_at`` sends SIGTERM on that sleep."""

    def __init__(self, deploy_reads: int = 2) -> None:
        self.endpoint = FakeVertexEndpoint(deploy_reads)
        self.endpoint.models = {m.model_uri: tabular(0.9) for m in (A, B, C)}
        self.sigterm_at: int | None = None
        self.clock = ManualClock(on_sleep=self._slept)

    def _slept(self, n: int) -> None:
        if self.sigterm_at is not None and n == self.sigterm_at:
            os.kill(os.getpid(), signal.SIGTERM)

    def config(self, **kw: Any) -> DeployConfig:
        return DeployConfig.parse({"backend": "vertex", "service": "churn", "canary_percent": 20,
                                   "readiness_timeout_s": 120, "smoke": {"requests": 20}, "compare": {"rows": 40},
                                   "traffic_probe": 100, "vertex": {"project": "p", "endpoint": "1",
                                                                    "wait": {"poll_interval_s": 15,
                                                                             "deadline_grace_s": 0}}, **kw})

    def backend(self) -> VertexServing:
        client: EndpointClient = self.endpoint  # the fake is an EndpointClient (checked by mypy)
        return VertexServing.from_config(self.config(), endpoint=client, clock=self.clock.clock(),
                                         lineage_reader=lineage)

    def rollout(self, candidate: Served, **kw: Any) -> tuple[RolloutRecord, VertexServing]:
        backend = self.backend()
        record = run_rollout(backend, candidate, self.config(**kw), ROWS, LABELS, clock=self.clock.clock())
        return record, backend

    def serve(self, model: Served) -> str:
        record, _ = self.rollout(model)
        assert record.promoted, record.reasons
        return self.endpoint.labels()[STABLE_LABEL]

    def ids(self) -> dict[str, str]:
        """Deployed model id -> artifact URI."""
        return {m.id: self.endpoint.model(m.model).artifact_uri for m in self.endpoint.deployed}


@pytest.fixture()
def project() -> Project:
    return Project()


def test_a_first_deployment_uploads_the_model_with_the_serving_image_and_takes_all_traffic(project: Project) -> None:
    record, _ = project.rollout(A)
    assert record.promoted and record.stable is None and record.traffic == {A.version: 1.0}
    (upload,) = project.endpoint.uploads
    assert upload["image"] == image("serving") and upload["artifact_uri"] == A.model_uri
    assert upload["args"] == ["--model_name=churn", "--model_dir=$(AIP_STORAGE_URI)", "--http_port=8080"]
    assert upload["predict_route"] == "/v1/models/churn:predict"
    assert upload["health_route"] == "/v2/models/churn/ready"
    assert upload["labels"] == {"kfp-catalog-service": "churn", "kfp-catalog-model-version": A.version}
    (deployed,) = project.endpoint.deployed
    assert project.endpoint.split == {deployed.id: 100} and project.endpoint.labels()[STABLE_LABEL] == deployed.id
    assert project.endpoint.settings[deployed.id]["machine_type"] == "n1-standard-2"
    assert project.backend().stable() == Served(A.model_uri, A.version, lineage(A.model_uri, A.version))


def test_a_first_deployment_not_yet_promoted_is_a_canary_not_the_stable_model(project: Project) -> None:
    backend = project.backend()
    job = backend.deploy_canary(A, 100)
    while job.status().phase.value != "Succeeded":
        pass
    fresh = project.backend()
    assert fresh.stable() is None and fresh.canary() == Served(A.model_uri, A.version, lineage(A.model_uri,
                                                                                                 A.version))


def test_a_canary_gets_n_percent_then_is_promoted(project: Project) -> None:
    stable_id = project.serve(A)
    record, backend = project.rollout(B)
    assert record.promoted, record.reasons
    deploy_split = [s for s in record.statuses if "traffic_split" in s and len(s["traffic_split"]) == 2]
    assert deploy_split and all(sum(s["traffic_split"].values()) == 100 for s in deploy_split)
    cand_id = next(i for i, uri in project.ids().items() if uri == B.model_uri)
    assert {stable_id: 80, cand_id: 20} in [s["traffic_split"] for s in deploy_split]
    # the probe's answers, attributed by Prediction.deployed_model_id: exactly the split
    assert record.traffic == {B.version: 0.2, A.version: 0.8}
    assert backend.attribution[cand_id] > 0 and backend.attribution[stable_id] > 0
    # promoted: all traffic on the candidate, the old model undeployed, the label moved
    assert project.endpoint.split == {cand_id: 100} and project.ids() == {cand_id: B.model_uri}
    assert project.endpoint.labels()[STABLE_LABEL] == cand_id
    assert project.backend().stable() == Served(B.model_uri, B.version, lineage(B.model_uri, B.version))
    ready = [s["assessment"] for s in record.statuses if s.get("assessment", "").startswith(("Pending", "Succ"))]
    assert ready[0] == "Pending: the candidate is not deployed yet" and ready[-1].startswith("Succeeded")


def test_each_model_is_reached_through_the_split_and_answers_are_attributed(project: Project) -> None:
    stable_id = project.serve(A)
    backend = project.backend()
    job = backend.deploy_canary(B, 20)
    while job.status().phase.value != "Succeeded":
        pass
    cand_id = backend.candidate_id
    assert cand_id is not None
    before = dict(backend.attribution)
    assert len(backend.predict("candidate", ROWS[:3])) == 3
    assert len(backend.predict("stable", ROWS[:3])) == 3
    answered = {k: backend.attribution[k] - before.get(k, 0) for k in (cand_id, stable_id)}
    assert answered[cand_id] >= 1 and answered[stable_id] >= 1
    assert sum(answered.values()) > 2  # requests the other model answered were sent again


def test_transient_vertex_errors_are_retried(project: Project) -> None:
    stable_id = project.serve(A)
    for method in ("list_models", "traffic_split", "update", "undeploy"):
        project.endpoint.fail_next(method, gexc.ServiceUnavailable("try again"), times=2)
    record, _ = project.rollout(B)
    assert record.promoted, record.reasons
    assert stable_id not in project.ids()


def test_a_candidate_failing_its_smoke_test_is_undeployed(project: Project) -> None:
    stable_id = project.serve(A)
    project.endpoint.models[B.model_uri] = failing(2, tabular(0.9))
    record, _ = project.rollout(B)
    assert record.decision == "rolled_back" and "smoke test" in record.reasons[0]
    assert "InternalServerError" in record.reasons[0]
    assert project.endpoint.split == {stable_id: 100} and project.ids() == {stable_id: A.model_uri}
    assert project.backend().stable() is not None and project.backend().canary() is None


def test_a_candidate_worse_than_the_stable_model_is_undeployed(project: Project) -> None:
    stable_id = project.serve(A)
    project.endpoint.models[B.model_uri] = tabular(0.1)
    record, _ = project.rollout(B)
    assert record.decision == "rolled_back" and "comparison: candidate auc 0.0000" in record.reasons[0]
    assert project.endpoint.split == {stable_id: 100} and project.ids() == {stable_id: A.model_uri}


def test_a_failed_deploy_fails_the_readiness_and_leaves_the_endpoint_as_it_was(project: Project) -> None:
    stable_id = project.serve(A)
    project.endpoint.fail_next_deploy("Model server never became ready (health check failed)")
    record, _ = project.rollout(B)
    assert record.decision == "rolled_back"
    assert "deploy failed: Model server never became ready" in record.reasons[0]
    assert project.endpoint.split == {stable_id: 100} and project.ids() == {stable_id: A.model_uri}


def test_a_deploy_that_lands_after_the_deadline_is_undeployed_once_it_lands() -> None:
    project = Project()
    stable_id = project.serve(A)
    project.endpoint.deploy_reads = 12  # the readiness deadline (120 s, polls every 15 s) passes first
    record, _ = project.rollout(B)
    assert record.decision == "rolled_back" and "did not finish within 120s" in record.reasons[0]
    assert project.endpoint.split == {stable_id: 100} and project.ids() == {stable_id: A.model_uri}
    assert any(c.startswith("undeploy") for c in project.endpoint.calls)


def test_a_deploy_that_never_lands_fails_the_step_loudly() -> None:
    project = Project()
    project.serve(A)
    project.endpoint.deploy_reads = 10**6
    with pytest.raises(RolloutFailure, match="still running after 120s"):
        project.rollout(B)


def test_sigterm_while_waiting_rolls_back(project: Project) -> None:
    stable_id = project.serve(A)
    project.endpoint.deploy_reads = 5
    project.sigterm_at = len(project.clock.sleeps) + 1
    with pytest.raises(Terminated):
        project.rollout(B)
    assert project.endpoint.split == {stable_id: 100} and project.ids() == {stable_id: A.model_uri}


def test_another_models_canary_is_refused_and_a_retry_takes_its_own_over(project: Project) -> None:
    project.serve(A)
    backend = project.backend()
    job = backend.deploy_canary(C, 20)  # a rollout that died before it finished
    while job.status().phase.value != "Succeeded":
        pass
    with pytest.raises(RolloutConflict, match=f"canary {C.version}"):
        project.rollout(B)
    calls = len(project.endpoint.calls)
    record, _ = project.rollout(C)
    assert record.promoted, record.reasons
    assert "deploy" not in project.endpoint.calls[calls:]  # taken over, not deployed twice
    assert len(project.endpoint.registry) == 2  # C uploaded once


def test_the_backend_table_builds_it(project: Project) -> None:
    from components.serving.target import make_serving

    backend = make_serving(project.config(), endpoint=project.endpoint, lineage_reader=lineage)
    assert isinstance(backend, VertexServing) and backend.stable() is None
    assert backend.endpoint() == ("https://us-central1-aiplatform.googleapis.com/v1/"
                                  "projects/p/locations/us-central1/endpoints/1:predict")
