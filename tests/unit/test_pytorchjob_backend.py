"""KubeflowTrainingBackend end to end against the fake apiserver: adopt on retry, failure, SIGTERM, deadline."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from components._core import backends
from components._core.config import ConfigError
from components._core.k8s import ResourceConflict, Terminated
from components._core.k8s_meta import SPEC_HASH_ANNOTATION
from components.training.kubeflow import KubeflowTrainingBackend
from components.training.launch import JobPhase, LaunchError, LaunchSpec
from components.training.run import run_training
from tests.fakes.k8s import FakeCoreV1Api, FakeCustomObjectsApi, ManualClock, SimulatedCrash
from tests.schemas import validate_pytorchjob

PLURAL = "pytorchjobs"


def launch(name: str = "train-abc") -> LaunchSpec:
    return LaunchSpec.parse(
        {
            "name": name,
            "trainer_config": {"epochs": 1},
            "data_uri": "gs://b/d.parquet",
            "output_uri": "gs://b/out",
            "world_size": 2,
            "image": "ghcr.io/x/torch:1",
            "timeout_s": 600,
        }
    )


class Cluster:
    def __init__(self) -> None:
        self.core = FakeCoreV1Api()
        self.api = FakeCustomObjectsApi(self.core)
        self.clock = ManualClock()

    def backend(self, **options) -> KubeflowTrainingBackend:
        opts = {"namespace": "ml", "run_id": "run-7", "task": "train", "poll_interval_s": 5, **options}
        return KubeflowTrainingBackend(opts, api=self.api, core_api=self.core, clock=self.clock.clock())

    def pods(self, name: str, master_log: str) -> None:
        job = self.api.stored(PLURAL)[0]
        for role, log in (("master", master_log), ("worker", "worker: waiting for master\n")):
            labels = {"training.kubeflow.org/job-name": name, "training.kubeflow.org/replica-type": role}
            self.core.add_pod("ml", f"{name}-{role}-0", labels, owner=job, logs={"pytorch": log})


@pytest.fixture()
def cluster() -> Cluster:
    return Cluster()


def test_registered_as_the_kubeflow_training_backend() -> None:
    assert backends.resolve("training", "kubeflow") is KubeflowTrainingBackend
    with pytest.raises(ConfigError, match="namespace"):
        KubeflowTrainingBackend({"namespace": "Bad_NS"})
    KubeflowTrainingBackend()  # no client is built until first use


def test_start_submits_a_valid_job_and_reports_phases(cluster: Cluster) -> None:
    job = cluster.backend().start(launch())
    stored = cluster.api.stored(PLURAL)
    assert [o["metadata"]["name"] for o in stored] == ["train-abc"]
    validate_pytorchjob(stored[0])
    assert stored[0]["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    assert job.status().phase is JobPhase.PENDING
    cluster.api.set_condition(PLURAL, "train-abc", "Created")
    cluster.api.set_condition(PLURAL, "train-abc", "Running")
    assert job.status().phase is JobPhase.RUNNING
    cluster.api.set_condition(PLURAL, "train-abc", "Succeeded", message="PyTorchJob train-abc succeeded")
    status = job.status()
    assert status.phase is JobPhase.SUCCEEDED and "succeeded" in status.message
    job.cancel()
    assert job.status().phase is JobPhase.CANCELLED


def test_crash_after_create_then_retry_runs_exactly_one_job(cluster: Cluster, tmp_path: Path) -> None:
    cluster.api.crash_after_create()
    with pytest.raises(SimulatedCrash):
        cluster.backend().run(launch())
    first_uid = cluster.api.stored(PLURAL)[0]["metadata"]["uid"]
    cluster.api.script("train-abc", "Created", "Succeeded")
    status = cluster.backend().run(launch(), logs_uri=str(tmp_path / "logs.txt"))  # the retried step
    assert status.phase is JobPhase.SUCCEEDED
    assert [o["metadata"]["uid"] for o in cluster.api.stored(PLURAL)] == [first_uid]
    assert cluster.api.deletions == []  # kept for its TTL


def test_failed_job_fails_the_step_with_logs_attached(cluster: Cluster, tmp_path: Path) -> None:
    backend = cluster.backend()
    job = backend.start(launch())
    cluster.pods("train-abc", "epoch 0 loss 0.7\nRuntimeError: NCCL timeout\n")
    cluster.core.add_event("ml", "PyTorchJob", "train-abc", "JobFailed", "master failed", "Warning")
    cluster.api.script(
        "train-abc",
        "Created",
        "Running",
        ("Failed", "True", "PyTorchJobFailed", "Master replica failed with exit code 1"),
    )
    logs = tmp_path / "logs" / "train.log"
    with pytest.raises(LaunchError, match=r"ml/train-abc failed: .*exit code 1.*logs and events: .*train\.log"):
        job.wait(logs_uri=str(logs))
    text = logs.read_text()
    assert "RuntimeError: NCCL timeout" in text and "worker: waiting for master" in text
    assert "PyTorchJob/train-abc JobFailed: master failed" in text
    assert len(cluster.api.stored(PLURAL)) == 1  # kept for debugging unless delete_on_failure


def test_delete_on_failure_and_on_success_options(cluster: Cluster) -> None:
    job = cluster.backend(delete_on_failure=True).start(launch())
    cluster.api.script("train-abc", "Failed")
    with pytest.raises(LaunchError):
        job.wait()
    assert cluster.api.stored(PLURAL) == []
    job = cluster.backend(delete_on_success=True).start(launch("train-def"))
    cluster.api.script("train-def", "Succeeded")
    assert job.wait().phase is JobPhase.SUCCEEDED
    assert cluster.api.stored(PLURAL) == []


def test_sigterm_deletes_the_job(cluster: Cluster, tmp_path: Path) -> None:
    cluster.clock.on_sleep = lambda n: os.kill(os.getpid(), signal.SIGTERM) if n == 3 else None
    with pytest.raises(Terminated):
        cluster.backend().run(launch(), logs_uri=str(tmp_path / "logs.txt"))
    assert cluster.api.deletions == [("train-abc", "Foreground")]
    assert cluster.api.stored(PLURAL) == [] and (tmp_path / "logs.txt").exists()


def test_deadline_deletes_the_job_and_fails_the_step(cluster: Cluster) -> None:
    job = cluster.backend(deadline_grace_s=60).start(launch())
    with pytest.raises(LaunchError, match="did not finish in 660s and was deleted"):
        job.wait()
    assert cluster.api.stored(PLURAL) == [] and sum(cluster.clock.sleeps) == pytest.approx(660)


def test_a_different_spec_under_the_same_name_is_refused(cluster: Cluster) -> None:
    cluster.backend().start(launch())
    with pytest.raises(ResourceConflict, match="different spec"):
        cluster.backend(backoff_limit=9).start(launch())


def test_handle_works_with_the_shared_training_runner(cluster: Cluster) -> None:
    backend = cluster.backend()
    backend.start(launch())
    cluster.pods("train-abc", "Traceback ...\nValueError: bad shape\n")
    cluster.api.script("train-abc", "Created", ("Failed", "True", "PyTorchJobFailed", "exit code 1"))
    with pytest.raises(LaunchError, match=r"(?s)exit code 1.*ValueError: bad shape"):
        run_training(launch(), backend, clock=cluster.clock.clock())
    assert len(cluster.api.stored(PLURAL)) == 1  # adopted, not created twice
