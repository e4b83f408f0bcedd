"""The fake Kubernetes API keeps the apiserver semantics the launcher tests rely on."""

from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException

from tests.fakes.k8s import FakeCoreV1Api, FakeCustomObjectsApi, SimulatedCrash

ARGS = ("kubeflow.org", "v1", "ns", "pytorchjobs")


def body(name: str = "j", spec: dict | None = None) -> dict:
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": spec or {"a": 1},
        "status": {"conditions": [{"type": "Succeeded", "status": "True"}]},
    }


def test_create_assigns_server_fields_ignores_status_and_409s_duplicates() -> None:
    api = FakeCustomObjectsApi()
    obj = api.create_namespaced_custom_object(*ARGS, body())
    meta = obj["metadata"]
    assert meta["uid"] and meta["resourceVersion"] and meta["generation"] == 1 and meta["creationTimestamp"]
    assert "status" not in obj and meta["namespace"] == "ns"
    with pytest.raises(ApiException) as err:
        api.create_namespaced_custom_object(*ARGS, body())
    assert err.value.status == 409 and '"reason": "AlreadyExists"' in err.value.body
    with pytest.raises(ApiException) as err:
        api.get_namespaced_custom_object(*ARGS, "missing")
    assert err.value.status == 404


def test_replace_and_patch_bump_versions_and_reject_stale_writes() -> None:
    api = FakeCustomObjectsApi()
    first = api.create_namespaced_custom_object(*ARGS, body())
    patched = api.patch_namespaced_custom_object(*ARGS, "j", {"spec": {"b": 2}})
    assert patched["spec"] == {"a": 1, "b": 2} and patched["metadata"]["generation"] == 2
    assert int(patched["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    with pytest.raises(ApiException) as err:
        api.replace_namespaced_custom_object(*ARGS, "j", first)  # stale resourceVersion
    assert err.value.status == 409
    status = api.patch_namespaced_custom_object_status(
        *ARGS, "j", {"status": {"conditions": [{"type": "Running", "status": "True"}]}, "spec": {"a": 9}}
    )
    assert status["spec"]["a"] == 1 and status["status"]["conditions"][0]["type"] == "Running"
    assert status["metadata"]["generation"] == 2  # status writes never touch spec or generation


def test_conditions_follow_the_operator_and_delete_collects_owned_pods() -> None:
    core = FakeCoreV1Api()
    api = FakeCustomObjectsApi(core)
    obj = api.create_namespaced_custom_object(*ARGS, body())
    core.add_pod("ns", "j-master-0", {"job": "j"}, logs={"pytorch": "hi"}, owner=obj)
    core.add_pod("ns", "other", {"job": "o"}, logs={"pytorch": "x"})
    api.set_condition("pytorchjobs", "j", "Running")
    final = api.set_condition("pytorchjobs", "j", "Succeeded")
    kinds = {c["type"]: c["status"] for c in final["status"]["conditions"]}
    assert kinds == {"Running": "False", "Succeeded": "True"}
    api.delete_namespaced_custom_object(*ARGS, "j", propagation_policy="Foreground")
    assert api.stored("pytorchjobs") == [] and list(core.pods) == [("ns", "other")]
    with pytest.raises(ApiException) as err:
        api.delete_namespaced_custom_object(*ARGS, "j")
    assert err.value.status == 404


def test_faults_crash_after_create_and_lingering_foreground_deletion() -> None:
    api = FakeCustomObjectsApi()
    api.crash_after_create()
    with pytest.raises(SimulatedCrash):
        api.create_namespaced_custom_object(*ARGS, body())
    assert len(api.stored("pytorchjobs")) == 1  # the server kept it
    api.deletion_polls = 1
    api.delete_namespaced_custom_object(*ARGS, "j", propagation_policy="Foreground")
    assert api.get_namespaced_custom_object(*ARGS, "j")["metadata"]["deletionTimestamp"]
    with pytest.raises(ApiException):
        api.get_namespaced_custom_object(*ARGS, "j")
    api.fail_next("get", ApiException(status=503, reason="Unavailable"))
    with pytest.raises(ApiException) as err:
        api.get_namespaced_custom_object(*ARGS, "j")
    assert err.value.status == 503


def test_core_api_logs_selectors_and_events() -> None:
    core = FakeCoreV1Api()
    core.add_pod(
        "ns",
        "p",
        {"a": "1", "b": "2"},
        logs={"c1": "l1\nl2\nl3\n", "c2": ""},
        restarts={"c1": 1},
        previous_logs={"c1": "before"},
    )
    assert [p.metadata.name for p in core.list_namespaced_pod("ns", label_selector="a=1,b=2").items] == ["p"]
    assert core.list_namespaced_pod("ns", label_selector="a=2").items == []
    assert core.read_namespaced_pod_log("p", "ns", container="c1", tail_lines=1) == "l3\n"
    assert core.read_namespaced_pod_log("p", "ns", container="c1", previous=True) == "before"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("p", "ns")  # two containers: the real API wants a name
    assert err.value.status == 400
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("p", "ns", container="c2", previous=True)
    assert err.value.status == 400
    core.add_event("ns", "Pod", "p", "Started", "started")
    core.add_event("ns", "Pod", "q", "Started", "other")
    got = core.list_namespaced_event("ns", field_selector="involvedObject.name=p").items
    assert [e.message for e in got] == ["started"]
