"""The in-memory Vertex endpoint refuses what Vertex refuses, so the backend's tests cannot pass on a split Vertex
would reject."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as gexc

from tests.fakes.kserve import tabular
from tests.fakes.vertex_endpoint import FakeVertexEndpoint


def deploy(ep: FakeVertexEndpoint, model: str, split: dict[str, int]) -> None:
    ep.deploy(model, traffic_split=split, display_name="x", machine_type="n1", min_replicas=1, max_replicas=1,
              service_account=None)


def endpoint_with_two_models() -> tuple[FakeVertexEndpoint, str, str]:
    ep = FakeVertexEndpoint(deploy_reads=1)
    ep.models = {"gs://b/a": tabular(0.9), "gs://b/b": tabular(0.9)}
    a = ep.upload_model(display_name="a", artifact_uri="gs://b/a", serving_image="img", command=[], args=[],
                        predict_route="/p", health_route="/h", port=8080, labels={})
    b = ep.upload_model(display_name="b", artifact_uri="gs://b/b", serving_image="img", command=[], args=[],
                        predict_route="/p", health_route="/h", port=8080, labels={})
    deploy(ep, a.resource_name, {"0": 100})
    (first,) = ep.list_models()
    deploy(ep, b.resource_name, {"0": 30, first.id: 70})
    second = next(m for m in ep.list_models() if m.id != first.id)
    return ep, first.id, second.id


def test_a_deploy_lands_with_its_split_and_a_new_id() -> None:
    ep, a, b = endpoint_with_two_models()
    assert ep.split == {a: 70, b: 30} and a != b and a.isdigit()
    with pytest.raises(gexc.NotFound):
        deploy(ep, "projects/p/locations/us-central1/models/404", {"0": 100})


@pytest.mark.parametrize("split", [{"0": 50}, {"0": 50, "999": 50}, {"0": 101}, {"0": -1, "x": 101}])
def test_a_deploy_split_must_sum_to_100_over_known_ids(split: dict[str, int]) -> None:
    ep, _, _ = endpoint_with_two_models()
    model = next(iter(ep.registry))
    with pytest.raises(gexc.InvalidArgument):
        deploy(ep, model, split)


def test_updates_and_undeploys_keep_vertex_rules() -> None:
    ep, a, b = endpoint_with_two_models()
    with pytest.raises(gexc.InvalidArgument):
        ep.update(traffic_split={a: 60, b: 30})
    with pytest.raises(gexc.InvalidArgument):
        ep.update(traffic_split={a: 50, "404": 50})
    with pytest.raises(gexc.FailedPrecondition):
        ep.undeploy(b)  # still takes 30 %: Vertex wants the new split
    with pytest.raises(gexc.NotFound):
        ep.undeploy("404", traffic_split={a: 100})
    ep.undeploy(b, traffic_split={a: 100})
    assert ep.split == {a: 100} and [m.id for m in ep.list_models()] == [a]
    ep.undeploy(a)  # the last model may go with its traffic
    assert ep.split == {}
    with pytest.raises(gexc.FailedPrecondition):
        ep.predict([{"x": 1.0}])


def test_predictions_follow_the_split_exactly_and_name_who_answered() -> None:
    ep, a, b = endpoint_with_two_models()
    answers = [ep.predict([{"x": 1.0}]).deployed_model_id for _ in range(100)]
    assert answers.count(a) == 70 and answers.count(b) == 30
    assert max(len(run) for run in "".join("a" if x == a else "b" for x in answers).split("b")) <= 3  # spread
