"""The shared custom-resource launcher against the fake apiserver: create-or-adopt, wait, logs, delete, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from components._core.k8s import (
    Cleanup,
    CustomResourceLauncher,
    DeadlineExceeded,
    ResourceConflict,
    ResourceFailed,
    ResourceGone,
    Terminated,
    generation_observed,
    terminal_condition,
)
from components._core.k8s_meta import SPEC_HASH_ANNOTATION
from tests.fakes.k8s import FakeCoreV1Api, FakeCustomObjectsApi, ManualClock, SimulatedCrash

ROOT = Path(__file__).resolve().parents[2]
PLURAL = "widgets"


def manifest(name: str = "w-1", size: int = 1) -> dict:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"size": size},
    }


@pytest.fixture()
def cluster() -> tuple[FakeCustomObjectsApi, FakeCoreV1Api, ManualClock, CustomResourceLauncher]:
    core = FakeCoreV1Api()
    api = FakeCustomObjectsApi(core)
    clock = ManualClock()
    launcher = CustomResourceLauncher(
        api, "example.com", "v1", PLURAL, "ns", core_api=core, clock=clock.clock(), interval_s=2.0
    )
    return api, core, clock, launcher


def test_apply_creates_then_adopts_the_same_spec_without_a_second_object(cluster) -> None:
    api, _, _, launcher = cluster
    created = launcher.apply(manifest())
    assert created["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    adopted = launcher.apply(manifest())
    assert adopted["metadata"]["uid"] == created["metadata"]["uid"]
    assert len(api.stored(PLURAL)) == 1
    assert [m for m, _ in api.calls].count("create") == 2  # the second create got 409 and adopted


def test_crash_after_create_then_retry_gives_exactly_one_object(cluster) -> None:
    api, _, _, launcher = cluster
    api.crash_after_create()
    with pytest.raises(SimulatedCrash):
        launcher.apply(manifest())
    retried = CustomResourceLauncher(api, "example.com", "v1", PLURAL, "ns")  # a fresh process
    obj = retried.apply(manifest())
    assert [o["metadata"]["uid"] for o in api.stored(PLURAL)] == [obj["metadata"]["uid"]]


def test_apply_refuses_to_adopt_a_different_spec(cluster) -> None:
    api, _, _, launcher = cluster
    launcher.apply(manifest(size=1))
    with pytest.raises(ResourceConflict, match="different spec"):
        launcher.apply(manifest(size=2))
    assert api.stored(PLURAL)[0]["spec"] == {"size": 1}


def test_apply_waits_out_a_deletion_then_creates_anew(cluster) -> None:
    api, _, clock, launcher = cluster
    old = launcher.apply(manifest())
    api.deletion_polls = 2
    launcher.delete("w-1")
    new = launcher.apply(manifest())
    assert new["metadata"]["uid"] != old["metadata"]["uid"] and "deletionTimestamp" not in new["metadata"]
    assert clock.sleeps  # it did wait for the old one to go


def test_apply_checks_group_version_and_namespace(cluster) -> None:
    _, _, _, launcher = cluster
    with pytest.raises(ValueError, match="apiVersion"):
        launcher.apply({**manifest(), "apiVersion": "other.com/v1"})
    with pytest.raises(ValueError, match="namespace"):
        launcher.apply({**manifest(), "metadata": {"name": "x", "namespace": "elsewhere"}})


def test_wait_accepts_created_to_succeeded_without_running(cluster) -> None:
    api, _, clock, launcher = cluster
    launcher.apply(manifest())
    api.script("w-1", "-", "Created", "Succeeded")
    obj = launcher.wait("w-1", timeout_s=60)
    assert [c["type"] for c in obj["status"]["conditions"]] == ["Created", "Succeeded"]
    assert clock.sleeps == [2.0, 2.0]


def test_wait_raises_on_failed_with_the_condition_message(cluster) -> None:
    api, _, _, launcher = cluster
    launcher.apply(manifest())
    api.script("w-1", "Created", "Running", ("Failed", "True", "BackoffLimitExceeded", "exit code 1"))
    with pytest.raises(ResourceFailed, match="BackoffLimitExceeded: exit code 1") as err:
        launcher.wait("w-1", timeout_s=60)
    assert err.value.condition["type"] == "Failed"


def test_terminal_condition_takes_the_newest_true_terminal_condition() -> None:
    def cond(t: str, s: str, when: str) -> dict:
        return {"type": t, "status": s, "lastTransitionTime": when}

    obj = {
        "status": {
            "conditions": [
                cond("Succeeded", "True", "2026-01-01T00:00:09Z"),
                cond("Failed", "True", "2026-01-01T00:00:03Z"),
                cond("Running", "True", "2026-01-01T00:00:10Z"),
            ]
        }
    }
    assert terminal_condition(obj)[0] == "succeeded"
    obj["status"]["conditions"][0]["status"] = "False"
    assert terminal_condition(obj)[0] == "failed"
    assert terminal_condition({"status": {"conditions": [cond("Running", "True", "x")]}}) == (None, None)
    ready = {"status": {"conditions": [cond("Ready", "True", "t")]}}
    assert terminal_condition(ready, succeeded=["Ready"], failed=[])[0] == "succeeded"


def test_wait_rides_out_transient_api_errors_but_not_deletion(cluster) -> None:
    api, _, _, launcher = cluster
    launcher.apply(manifest())
    api.fail_next("get", ApiException(status=503, reason="Service Unavailable"), times=2)
    api.script("w-1", "Succeeded")
    assert launcher.wait("w-1", timeout_s=60)["metadata"]["name"] == "w-1"
    api.fail_next("get", ApiException(status=403, reason="Forbidden"))
    with pytest.raises(ApiException):
        launcher.wait("w-1", timeout_s=60)
    launcher.delete("w-1")
    with pytest.raises(ResourceGone):
        launcher.wait("w-1", timeout_s=60)


def test_deadline_deletes_and_success_keeps_unless_configured(cluster) -> None:
    api, _, _, launcher = cluster
    launcher.apply(manifest())
    with pytest.raises(DeadlineExceeded, match="Created=True"):
        api.set_condition(PLURAL, "w-1", "Created")
        launcher.watch("w-1", timeout_s=5)
    assert api.deletions == [("w-1", "Foreground")] and api.stored(PLURAL) == []
    launcher.apply(manifest("w-2"))
    api.script("w-2", "Succeeded")
    launcher.watch("w-2", timeout_s=60)
    assert len(api.stored(PLURAL)) == 1
    launcher.apply(manifest("w-3"))
    api.script("w-3", "Succeeded")
    launcher.watch("w-3", timeout_s=60, cleanup=Cleanup(on_success=True))
    assert [o["metadata"]["name"] for o in api.stored(PLURAL)] == ["w-2"]


def test_failure_writes_logs_and_events_then_keeps_the_object_by_default(cluster, tmp_path: Path) -> None:
    api, core, _, launcher = cluster
    obj = launcher.apply(manifest())
    core.add_pod(
        "ns",
        "w-1-master-0",
        {"job": "w-1"},
        owner=obj,
        logs={"main": "epoch 1\nboom: CUDA OOM\n"},
        restarts={"main": 1},
        previous_logs={"main": "first attempt died\n"},
    )
    core.add_pod("ns", "w-1-worker-0", {"job": "w-1"}, owner=obj, logs={"main": "worker ok\n"})
    core.add_pod("ns", "unrelated", {"job": "x"}, logs={"main": "not mine\n"})
    core.add_event("ns", "Widget", "w-1", "Created", "created pods")
    core.add_event("ns", "Pod", "w-1-master-0", "BackOff", "back-off restarting", "Warning")
    api.script("w-1", ("Failed", "True", "Crashed", "master exited 1"))
    logs = tmp_path / "logs.txt"
    with pytest.raises(ResourceFailed, match=f"master exited 1; logs and events: {logs}"):
        launcher.watch("w-1", timeout_s=60, label_selector="job=w-1", logs_uri=str(logs))
    text = logs.read_text()
    for piece in (
        "pod w-1-master-0 container main (previous run)",
        "first attempt died",
        "boom: CUDA OOM",
        "worker ok",
        "Widget/w-1 Created: created pods",
        "Warning Pod/w-1-master-0 BackOff",
    ):
        assert piece in text, piece
    assert "not mine" not in text
    assert text.index("first attempt died") < text.index("boom: CUDA OOM") < text.index("worker ok")
    assert len(api.stored(PLURAL)) == 1


def test_collect_logs_reports_api_errors_inline(cluster) -> None:
    api, core, _, launcher = cluster
    core.add_pod("ns", "p", {"job": "w"}, logs={"main": "x"})
    core.read_namespaced_pod_log = lambda *a, **k: (_ for _ in ()).throw(ApiException(status=404, reason="Gone"))
    text = launcher.collect_logs("w", "job=w")
    assert "(logs unavailable: 404 Gone)" in text and "(no events)" in text
    assert "not collected" in CustomResourceLauncher(api, "example.com", "v1", PLURAL, "ns").collect_logs("w")


def test_delete_tolerates_404_and_uses_foreground(cluster) -> None:
    api, _, _, launcher = cluster
    launcher.apply(manifest())
    assert launcher.delete("w-1") is True and launcher.delete("w-1") is False
    assert api.deletions == [("w-1", "Foreground")]


def test_sigterm_while_waiting_deletes_the_resource_and_exits_143(cluster) -> None:
    api, _, clock, launcher = cluster
    launcher.apply(manifest())
    before = signal.getsignal(signal.SIGTERM)
    clock.on_sleep = lambda n: os.kill(os.getpid(), signal.SIGTERM) if n == 2 else None
    with pytest.raises(Terminated) as err:
        launcher.watch("w-1", timeout_s=600)
    assert err.value.code == 143
    assert api.deletions == [("w-1", "Foreground")] and api.stored(PLURAL) == []
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_to_a_real_process_deletes_the_resource(tmp_path: Path) -> None:
    record = tmp_path / "deletions.json"
    script = textwrap.dedent(f"""
        import atexit, json, sys
        sys.path.insert(0, {str(ROOT)!r})
        from components._core.k8s import CustomResourceLauncher
        from tests.fakes.k8s import FakeCustomObjectsApi
        api = FakeCustomObjectsApi()
        atexit.register(lambda: open({str(record)!r}, "w").write(json.dumps(api.deletions)))
        launcher = CustomResourceLauncher(api, "example.com", "v1", "widgets", "ns", interval_s=0.05)
        launcher.apply({{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {{"name": "w"}},
                         "spec": {{}}}})
        get = api.get_namespaced_custom_object
        def reading(*args, **kwargs):  # polls happen only once the SIGTERM handler is installed
            print("ready", flush=True)
            return get(*args, **kwargs)
        api.get_namespaced_custom_object = reading
        launcher.watch("w", timeout_s=120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    finally:
        proc.kill()
    assert json.loads(record.read_text()) == [["w", "Foreground"]]


def test_patch_then_wait_ignores_a_stale_ready_until_the_new_generation_is_observed(cluster) -> None:
    api, _, clock, launcher = cluster
    launcher.apply(manifest())
    api.set_condition(PLURAL, "w-1", "Ready")
    api.patch_namespaced_custom_object_status(
        "example.com", "v1", "ns", PLURAL, "w-1", {"status": {"observedGeneration": 1}}
    )
    patched = launcher.patch("w-1", {"spec": {"canaryTrafficPercent": 10}})
    assert patched["metadata"]["generation"] == 2 and patched["spec"] == {"canaryTrafficPercent": 10, "size": 1}
    polls: list[int] = []

    def controller_catches_up(obj: dict | None) -> None:
        polls.append(1)
        if len(polls) == 3:
            api.patch_namespaced_custom_object_status(
                "example.com", "v1", "ns", PLURAL, "w-1", {"status": {"observedGeneration": 2}}
            )

    obj = launcher.wait(
        "w-1", timeout_s=60, succeeded=["Ready"], failed=[], settled=generation_observed, on_poll=controller_catches_up
    )
    assert obj["status"]["observedGeneration"] == 2 and len(clock.sleeps) == 3
