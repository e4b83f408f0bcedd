"""The shared custom-resource launcher against the fake apiserver: create-or-adopt, a custom resource waited on
through the one wait path, logs, delete, SIGTERM."""

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

from components._core.jobs import JobPhase, wait
from components._core.k8s import (
    Cleanup,
    CustomResourceJob,
    CustomResourceLauncher,
    ResourceConflict,
    api_policy,
    generation_observed,
    terminal_condition,
)
from components._core.k8s_meta import SPEC_HASH_ANNOTATION
from components._core.signals import Terminated
from components._core.waiting import DeadlineExceeded
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
    launcher = CustomResourceLauncher(api, "example.com", "v1", PLURAL, "ns", core_api=core, clock=clock.clock(),
                                      retry=api_policy(2.0))
    return api, core, clock, launcher


def job(launcher: CustomResourceLauncher, name: str = "w-1", timeout_s: float = 60, **kw) -> CustomResourceJob:
    """A widget waited on every 2 s, ``timeout_s`` plus no grace."""
    return CustomResourceJob(launcher, name, policy=api_policy(2.0, timeout_s), **kw)


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
    status = wait(job(launcher), clock=clock.clock())
    assert status.phase is JobPhase.SUCCEEDED
    assert [c["type"] for c in status.details["conditions"]] == ["Created", "Succeeded"]
    assert clock.sleeps == [2.0, 2.0]


def test_wait_ends_failed_with_the_condition_message(cluster) -> None:
    api, _, clock, launcher = cluster
    launcher.apply(manifest())
    api.script("w-1", "Created", "Running", ("Failed", "True", "BackoffLimitExceeded", "exit code 1"))
    seen: list[JobPhase] = []
    status = wait(job(launcher), clock=clock.clock(), on_status=lambda s: seen.append(s.phase))
    assert status.phase is JobPhase.FAILED and status.message == "BackoffLimitExceeded: exit code 1"
    assert seen == [JobPhase.PENDING, JobPhase.RUNNING, JobPhase.FAILED]


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


def test_wait_rides_out_transient_api_errors_with_backoff_but_not_others_nor_deletion(cluster) -> None:
    api, _, clock, launcher = cluster
    launcher.apply(manifest())
    api.fail_next("get", ApiException(status=503, reason="Service Unavailable"), times=2)
    api.fail_next("get", ApiException(status=429, reason="Too Many Requests"))
    api.script("w-1", "Succeeded")
    assert wait(job(launcher), clock=clock.clock()).phase is JobPhase.SUCCEEDED
    assert clock.sleeps == [1.0, 2.0, 4.0]  # exponential backoff, then the success
    api.fail_next("get", ApiException(status=403, reason="Forbidden"))
    with pytest.raises(ApiException):
        wait(job(launcher), clock=clock.clock())
    assert len(api.stored(PLURAL)) == 1  # a non-transient error leaves the object for a retry to adopt
    launcher.delete("w-1")
    assert wait(job(launcher), clock=clock.clock()).phase is JobPhase.CANCELLED


def test_transient_errors_past_their_budget_fail(cluster) -> None:
    api, _, clock, launcher = cluster
    launcher.apply(manifest())
    api.fail_next("get", ApiException(status=500, reason="Internal Server Error"), times=50)
    policy = api_policy(2.0, 600, transient_budget_s=30)
    with pytest.raises(ApiException, match="500"):
        wait(CustomResourceJob(launcher, "w-1", policy=policy), clock=clock.clock())
    assert sum(clock.sleeps) >= 30 and len(api.stored(PLURAL)) == 1


def test_create_retries_a_transient_error(cluster) -> None:
    api, _, clock, launcher = cluster
    api.fail_next("create", ApiException(status=503, reason="Service Unavailable"))
    created = launcher.apply(manifest())
    assert created["metadata"]["name"] == "w-1" and clock.sleeps == [1.0]


def test_deadline_deletes_and_success_or_failure_keep_unless_configured(cluster) -> None:
    api, _, clock, launcher = cluster
    launcher.apply(manifest())
    api.set_condition(PLURAL, "w-1", "Created", message="waiting for 4 workers to be scheduled")
    with pytest.raises(DeadlineExceeded, match="last phase Pending: Created: waiting for 4 workers to be scheduled"):
        wait(job(launcher, timeout_s=5), clock=clock.clock())
    assert api.deletions == [("w-1", "Foreground")] and api.stored(PLURAL) == []
    for name, cleanup, end in (("w-2", None, "Succeeded"), ("w-3", Cleanup(on_success=True), "Succeeded"),
                               ("w-4", None, "Failed"), ("w-5", Cleanup(on_failure=True), "Failed")):
        launcher.apply(manifest(name))
        api.script(name, end)
        wait(job(launcher, name, cleanup=cleanup), clock=clock.clock())
    assert [o["metadata"]["name"] for o in api.stored(PLURAL)] == ["w-2", "w-4"]


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
    widget = job(launcher, label_selector="job=w-1")
    assert wait(widget, clock=cluster[2].clock()).message == "Crashed: master exited 1"
    text = widget.logs()
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
    core.list_namespaced_pod = lambda *a, **k: 1 / 0
    assert "log collection of widgets.example.com/v1 ns/w failed: ZeroDivisionError" in launcher.collect_logs(
        "w", "job=w")


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
        wait(job(launcher, timeout_s=600), clock=clock.clock())
    assert err.value.code == 143
    assert api.deletions == [("w-1", "Foreground")] and api.stored(PLURAL) == []
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_to_a_real_process_deletes_the_resource(tmp_path: Path) -> None:
    record = tmp_path / "deletions.json"
    script = textwrap.dedent(f"""
        import atexit, json, sys
        sys.path.insert(0, {str(ROOT)!r})
        from components._core.jobs import wait
        from components._core.k8s import CustomResourceJob, CustomResourceLauncher, api_policy
        from tests.fakes.k8s import FakeCustomObjectsApi
        api = FakeCustomObjectsApi()
        atexit.register(lambda: open({str(record)!r}, "w").write(json.dumps(api.deletions)))
        launcher = CustomResourceLauncher(api, "example.com", "v1", "widgets", "ns")
        launcher.apply({{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {{"name": "w"}},
                         "spec": {{}}}})
        get = api.get_namespaced_custom_object
        def reading(*args, **kwargs):  # polls happen only once the SIGTERM handler is installed
            print("ready", flush=True)
            return get(*args, **kwargs)
        api.get_namespaced_custom_object = reading
        wait(CustomResourceJob(launcher, "w", policy=api_policy(0.05, 120)))
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

    def controller_catches_up(_status: object) -> None:
        polls.append(1)
        if len(polls) == 3:
            api.patch_namespaced_custom_object_status(
                "example.com", "v1", "ns", PLURAL, "w-1", {"status": {"observedGeneration": 2}}
            )

    service = job(launcher, succeeded=["Ready"], failed=[], settled=generation_observed)
    status = wait(service, clock=clock.clock(), on_status=controller_catches_up)
    assert status.phase is JobPhase.SUCCEEDED and len(clock.sleeps) == 3
    assert status.details["object"]["status"]["observedGeneration"] == 2
