"""The training step on the Vertex backend, through its production path (``train_step`` and the wrapper), with the
Vertex job client faked where the step makes it: worker pools, labels, retries that can succeed, transient API
errors, SIGTERM (also during the submit) and the deadline."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from kfp import dsl

from components._core.k8s_meta import deterministic_name
from components._core.signals import Terminated
from components._kfp import train
from components.drift.bundle import read_bundle
from components.training import vertex
from components.training.launch import LaunchError, LaunchSpec, VertexConfig
from components.training.step import train_step
from components.training.vertex import ATTEMPT_LABEL, HASH_LABEL, STEP_LABEL, build_worker_pool_specs
from pipelines import defaults
from tests.component.artifacts import outputs
from tests.fakes.clock import ManualClock
from tests.fakes.operators import tiny_model, tiny_training_set, write_tiny_training_set, write_trainer_outputs
from tests.fakes.vertex import FakeVertexJobClient

STEP = deterministic_name("run-7", "train", prefix="train")
ROOT = "memory://vbucket/runs"
CONFIG = {"project": "p", "staging_bucket": "gs://staging", "wait": {"poll_interval_s": 30, "deadline_grace_s": 0}}


def spec(**kw: Any) -> LaunchSpec:
    base = {"name": "train-abc", "trainer_config": {"lr": 0.1}, "data_uri": "gs://b/d.parquet",
            "output_uri": "gs://b/out", "world_size": 4, "image": "us-docker.pkg.dev/p/r/torch:1", "timeout_s": 600}
    return LaunchSpec.parse({**base, **kw})


class Vertex:
    """The fake Vertex API, handed to the step where it makes its job client; each job follows ``states``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.client = FakeVertexJobClient()
        self.clock = ManualClock()
        self.states: list[Any] = ["JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]
        self.client.on_create.append(lambda name: self.client.script(name, *self.states))
        monkeypatch.setattr(vertex, "default_client", lambda cfg: self.client)
        write_trainer_outputs(f"{ROOT}/{STEP}", [0.7, 0.8])

    def step(self, tmp_path: Path, *, tag: str = "", **launch: Any):
        cfg = {"backend": "vertex", "output_root": ROOT, "world_size": 2, "vertex": CONFIG, **launch}
        write_tiny_training_set("memory://vbucket/train.parquet")
        return train_step("memory://vbucket/train.parquet", model_dir=str(tmp_path / f"model{tag}"),
                          run_dir=str(tmp_path / f"run{tag}"), trainer_config=defaults.TRAINER_CONFIG, launch=cfg,
                          run_id="run-7", task="train", clock=self.clock.clock())

    def live(self) -> list[str]:
        done = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED"}
        return [n for n, j in self.client.jobs.items() if j.state not in done]


@pytest.fixture()
def env(monkeypatch: pytest.MonkeyPatch) -> Vertex:
    return Vertex(monkeypatch)


def test_worker_pools_chief_plus_workers_and_gpus() -> None:
    cfg = VertexConfig.parse({**CONFIG, "machine_type": "a2-highgpu-2g", "accelerator_type": "NVIDIA_TESLA_A100"})
    pools = build_worker_pool_specs(spec(resources={"gpus": 2}), cfg)
    assert [p["replica_count"] for p in pools] == [1, 3]
    assert pools[0]["machine_spec"] == {"accelerator_count": 2, "accelerator_type": "NVIDIA_TESLA_A100",
                                        "machine_type": "a2-highgpu-2g"}
    cmd = pools[1]["container_spec"]["command"]
    assert cmd[:3] == ["python", "-m", "components.training.trainer"]
    assert json.loads(cmd[cmd.index("--config") + 1]) == {"lr": 0.1}
    single = build_worker_pool_specs(spec(world_size=1), cfg)
    assert len(single) == 1 and "accelerator_type" not in single[0]["machine_spec"]
    with pytest.raises(ValueError, match="image is required"):
        build_worker_pool_specs(spec(image=""), cfg)


@pytest.mark.slow  # importing the Vertex API types takes several seconds
def test_worker_pools_are_accepted_by_the_vertex_api_types() -> None:
    from google.cloud.aiplatform_v1.types import custom_job

    cfg = VertexConfig.parse(CONFIG)
    for s in (spec(), spec(resources={"gpus": 1}, world_size=1)):
        for pool in build_worker_pool_specs(s, cfg):
            assert custom_job.WorkerPoolSpec(**pool).container_spec.image_uri == s.image
    with pytest.raises(ValueError, match="Unknown field"):
        custom_job.WorkerPoolSpec(**{**build_worker_pool_specs(spec(), cfg)[0], "replicas": 2})


def test_success_submits_with_step_attempt_and_hash_labels_and_polls_as_configured(env: Vertex, tmp_path: Path
                                                                                   ) -> None:
    out = env.step(tmp_path, vertex={**CONFIG, "labels": {"team": "ml"}})
    (job,) = env.client.jobs.values()
    assert job.labels[STEP_LABEL] == STEP and job.labels[ATTEMPT_LABEL] == "1" and job.labels["team"] == "ml"
    assert len(job.labels[HASH_LABEL]) == 40 and job.display_name == STEP and job.timeout_s == 3600
    assert set(env.clock.sleeps) == {30.0} and out.metrics["test_auc"] == 0.9
    assert (tmp_path / "model" / "model.safetensors").read_bytes() == (tiny_model() / "model.safetensors").read_bytes()
    assert read_bundle(str(tmp_path / "model")).reference.height == tiny_training_set().height  # bundle written


def test_transient_errors_on_submit_and_status_are_retried(env: Vertex, tmp_path: Path) -> None:
    env.client.fail_next("create", gexc.TooManyRequests("quota"))
    env.client.fail_next("get", gexc.ServiceUnavailable("try again"), times=2)
    out = env.step(tmp_path)
    assert out.metrics["test_auc"] == 0.9 and len(env.client.jobs) == 1
    env.client.fail_next("get", gexc.PermissionDenied("no"))
    with pytest.raises(gexc.PermissionDenied):
        env.step(tmp_path, tag="-2")


def test_a_failed_job_fails_the_step_and_the_retry_submits_attempt_2(env: Vertex, tmp_path: Path) -> None:
    env.states = ["JOB_STATE_RUNNING", ("JOB_STATE_FAILED", "replica workerpool0-0 exit 1")]
    with pytest.raises(LaunchError, match=r"attempt 1\) failed: replica workerpool0-0 exit 1"):
        env.step(tmp_path)
    assert 'job_id="' in (tmp_path / "run" / "logs.txt").read_text()
    env.states = ["JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]
    out = env.step(tmp_path, tag="-retry")
    assert out.attempt == 2 and out.name == f"{STEP}-a2"
    assert [j.labels[ATTEMPT_LABEL] for j in env.client.jobs.values()] == ["1", "2"]
    assert "Failed, ended before" in (tmp_path / "run-retry" / "logs.txt").read_text()


def test_a_retry_adopts_the_running_job_instead_of_submitting_again(env: Vertex, tmp_path: Path) -> None:
    env.client.crash_after_create()
    with pytest.raises(Exception, match="died right after submit"):
        env.step(tmp_path)
    out = env.step(tmp_path, tag="-retry")
    assert out.adopted and len(env.client.jobs) == 1


def test_a_job_of_the_step_with_other_worker_pools_is_refused(env: Vertex, tmp_path: Path) -> None:
    env.step(tmp_path)
    with pytest.raises(LaunchError, match="runs other worker pools"):
        env.step(tmp_path, tag="-other", world_size=3)
    assert len(env.client.jobs) == 1


def test_sigterm_cancels_the_job(env: Vertex, tmp_path: Path) -> None:
    env.states = ["JOB_STATE_PENDING", "JOB_STATE_RUNNING"]
    env.clock.on_sleep = lambda n: os.kill(os.getpid(), signal.SIGTERM) if n == 2 else None
    with pytest.raises(Terminated):
        env.step(tmp_path)
    (job,) = env.client.jobs.values()
    assert job.cancel_requests == 1 and env.live() == []


def test_sigterm_during_the_submit_still_cancels_the_submitted_job(env: Vertex, tmp_path: Path) -> None:
    env.states = ["JOB_STATE_RUNNING"]
    env.client.on_create.append(lambda name: os.kill(os.getpid(), signal.SIGTERM))
    with pytest.raises(Terminated, match="while creating"):
        env.step(tmp_path)
    (job,) = env.client.jobs.values()
    assert job.cancel_requests == 1 and env.live() == []


def test_the_deadline_cancels_and_fails(env: Vertex, tmp_path: Path) -> None:
    env.states = ["JOB_STATE_RUNNING"]
    with pytest.raises(LaunchError, match="did not finish within 60s"):
        env.step(tmp_path, timeout_s=60)
    (job,) = env.client.jobs.values()
    assert job.cancel_requests == 1


def test_the_wrapper_trains_on_the_vertex_backend(env: Vertex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                  ) -> None:
    out = outputs(tmp_path, model=dsl.Model, run=dsl.Artifact, metrics=dsl.Metrics)
    data = dsl.Dataset(name="training_set", uri="gs://pipeline-root/run-v/training_set", metadata={})
    local = tmp_path / "gcsfuse" / "training_set"  # where Vertex mounts the artifact (/gcs/...) in the step's pod
    write_tiny_training_set(str(local))
    monkeypatch.setattr(dsl.Dataset, "path", property(lambda self: str(local)))
    step = deterministic_name("run-v", "train", prefix="train")
    write_trainer_outputs(f"{ROOT}/{step}", [0.7, 0.8])
    launch = json.dumps({"backend": "vertex", "output_root": ROOT,
                         "vertex": {**CONFIG, "wait": {"poll_interval_s": 0.01}}})
    auc = train.python_func(training_set=data, trainer_config=json.loads(defaults.TRAINER_CONFIG), launch=launch,
                            run_id="run-v", task="train", **out)
    assert auc == 0.9 and out["model"].metadata["job"] == step and len(env.client.jobs) == 1
    (job,) = env.client.jobs.values()
    command = job.pools[0]["container_spec"]["command"]
    assert command[command.index("--data-uri") + 1] == "gs://pipeline-root/run-v/training_set"
