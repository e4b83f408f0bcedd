"""Vertex backend with an injected job client: worker pools, re-attach on retry, failure, cancel on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from components._core import backends
from components._core.k8s import Terminated
from components.training.launch import JobPhase, LaunchError, LaunchSpec
from components.training.vertex import HASH_LABEL, NAME_LABEL, VertexTrainingBackend, build_worker_pool_specs
from tests.fakes.k8s import ManualClock, SimulatedCrash
from tests.fakes.vertex import FakeVertexJobClient


def launch(**kw) -> LaunchSpec:
    base = {
        "name": "train-abc",
        "trainer_config": {"lr": 0.1},
        "data_uri": "gs://b/d.parquet",
        "output_uri": "gs://b/out",
        "world_size": 4,
        "image": "us-docker.pkg.dev/p/r/torch:1",
        "timeout_s": 600,
    }
    return LaunchSpec.parse({**base, **kw})


class Env:
    def __init__(self, tmp_path: Path) -> None:
        self.client = FakeVertexJobClient()
        self.clock = ManualClock()
        self.state_dir = tmp_path / "state"

    def backend(self, **options) -> VertexTrainingBackend:
        opts = {"state_dir": str(self.state_dir), "poll_interval_s": 30, **options}
        return VertexTrainingBackend(opts, client=self.client, clock=self.clock.clock())


@pytest.fixture()
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def test_worker_pools_chief_plus_workers_and_gpus() -> None:
    pools = build_worker_pool_specs(
        launch(resources={"gpus": 2}), machine_type="a2-highgpu-2g", accelerator_type="NVIDIA_TESLA_A100"
    )
    assert [p["replica_count"] for p in pools] == [1, 3]
    assert pools[0]["machine_spec"] == {
        "accelerator_count": 2,
        "accelerator_type": "NVIDIA_TESLA_A100",
        "machine_type": "a2-highgpu-2g",
    }
    cmd = pools[1]["container_spec"]["command"]
    assert cmd[:3] == ["python", "-m", "components.training.trainer"]
    assert json.loads(cmd[cmd.index("--config") + 1]) == {"lr": 0.1}
    single = build_worker_pool_specs(launch(world_size=1))
    assert len(single) == 1 and "accelerator_type" not in single[0]["machine_spec"]
    with pytest.raises(ValueError, match="image is required"):
        build_worker_pool_specs(launch(image=""))


@pytest.mark.slow  # importing the Vertex API types takes several seconds
def test_worker_pools_are_accepted_by_the_vertex_api_types() -> None:
    from google.cloud.aiplatform_v1.types import custom_job

    for spec in (launch(), launch(resources={"gpus": 1}, world_size=1)):
        for pool in build_worker_pool_specs(spec):
            parsed = custom_job.WorkerPoolSpec(**pool)
            assert parsed.container_spec.image_uri == spec.image
    with pytest.raises(ValueError, match="Unknown field"):
        custom_job.WorkerPoolSpec(**{**build_worker_pool_specs(launch())[0], "replicas": 2})


def test_registered_and_submits_with_name_and_hash_labels(env: Env) -> None:
    assert backends.resolve("training", "vertex") is VertexTrainingBackend
    job = env.backend(labels={"team": "ml"}).start(launch())
    fake = env.client.jobs[job.resource_name]
    assert fake.labels[NAME_LABEL] == "train-abc" and fake.labels["team"] == "ml" and len(fake.labels[HASH_LABEL]) == 40
    assert fake.timeout_s == 600 and fake.display_name == "train-abc"
    state = json.loads((env.state_dir / "train-abc.json").read_text())
    assert state["resource_name"] == job.resource_name


def test_retried_step_reattaches_from_the_state_file(env: Env) -> None:
    first = env.backend().start(launch())
    env.client.script(first.resource_name, "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED")
    env.client.calls.clear()
    status = env.backend().run(launch())  # a new process
    assert status.phase is JobPhase.SUCCEEDED
    assert "create" not in env.client.calls and len(env.client.jobs) == 1
    assert "find" not in env.client.calls  # the state file was enough


def test_crash_before_the_state_file_reattaches_by_label(env: Env) -> None:
    env.client.crash_after_create()
    with pytest.raises(SimulatedCrash):
        env.backend().start(launch())
    assert not (env.state_dir / "train-abc.json").exists()
    job = env.backend().start(launch())
    assert len(env.client.jobs) == 1 and job.resource_name in env.client.jobs
    assert (env.state_dir / "train-abc.json").exists()


def test_a_changed_spec_is_refused_not_resubmitted(env: Env) -> None:
    env.backend().start(launch())
    with pytest.raises(LaunchError, match="different spec"):
        env.backend().start(launch(trainer_config={"lr": 0.2}))
    (env.state_dir / "train-abc.json").unlink()
    with pytest.raises(LaunchError, match="has spec"):
        env.backend().start(launch(trainer_config={"lr": 0.2}))
    assert len(env.client.jobs) == 1


def test_failed_job_fails_the_step_with_the_error_in_the_log_artifact(env: Env, tmp_path: Path) -> None:
    job = env.backend().start(launch())
    env.client.script(job.resource_name, "JOB_STATE_RUNNING", ("JOB_STATE_FAILED", "replica workerpool0-0 exit 1"))
    logs = tmp_path / "vertex.log"
    with pytest.raises(LaunchError, match=r"JOB_STATE_FAILED: replica workerpool0-0 exit 1; logs: .*vertex\.log"):
        job.wait(logs_uri=str(logs))
    text = logs.read_text()
    assert job.resource_name in text and "exit 1" in text and 'job_id="' in text
    assert env.client.jobs[job.resource_name].cancel_requests == 0


def test_sigterm_cancels_the_job(env: Env) -> None:
    job = env.backend().start(launch())
    env.client.script(job.resource_name, "JOB_STATE_PENDING", "JOB_STATE_RUNNING")
    env.clock.on_sleep = lambda n: os.kill(os.getpid(), signal.SIGTERM) if n == 2 else None
    with pytest.raises(Terminated):
        job.wait()
    assert env.client.jobs[job.resource_name].cancel_requests == 1
    assert job.status().phase is JobPhase.CANCELLED
    job.cancel()  # safe twice: a finished job is not cancelled again
    assert env.client.jobs[job.resource_name].cancel_requests == 1


def test_deadline_cancels_and_fails(env: Env) -> None:
    job = env.backend(deadline_grace_s=0).start(launch(timeout_s=60))
    with pytest.raises(LaunchError, match="cancelled"):
        job.wait()
    assert env.client.jobs[job.resource_name].cancel_requests == 1


def test_labels_only_mode_without_a_state_dir(env: Env) -> None:
    backend = env.backend(state_dir="")
    first = backend.start(launch())
    again = backend.start(launch())
    assert first.resource_name == again.resource_name and len(env.client.jobs) == 1
