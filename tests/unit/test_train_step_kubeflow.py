"""The training step on the Kubeflow backend, through its production path (``train_step`` and the wrapper), with
only the cluster faked: the fake apiserver and a fake training operator, injected where the step makes its
Kubernetes clients. Waiting, transient API errors, retries that can succeed, SIGTERM and the deadline."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from kfp import dsl
from kubernetes.client.exceptions import ApiException

from components._core import k8s
from components._core.config import ConfigError
from components._core.k8s import ResourceConflict
from components._core.k8s_meta import ATTEMPT_LABEL, STEP_LABEL, deterministic_name
from components._core.signals import Terminated
from components._kfp import train
from components.drift.bundle import read_bundle
from components.training.launch import LaunchError
from components.training.step import train_step
from pipelines import defaults
from tests.component.artifacts import outputs
from tests.fakes.clock import ManualClock
from tests.fakes.k8s import FakeCoreV1Api, FakeCustomObjectsApi, SimulatedCrash
from tests.fakes.operators import (
    JobFails,
    TrainingOperator,
    tiny_model,
    tiny_training_set,
    trainer_args,
    write_tiny_training_set,
)
from tests.schemas import validate_pytorchjob

PLURAL = "pytorchjobs"
STEP = deterministic_name("run-7", "train", prefix="train")


class Cluster:
    """The fake apiserver with a training operator, handed to the step as its kubeconfig's cluster."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.core = FakeCoreV1Api()
        self.api = FakeCustomObjectsApi(self.core)
        self.operator = TrainingOperator(self.api, lambda cfg: self.curve(cfg))
        self.clock = ManualClock()
        self.fail_attempts: set[int] = set()
        self.created: list[tuple[str, list[str]]] = []  # (name, live jobs when it was created)
        monkeypatch.setattr(k8s, "default_clients", lambda: (self.api, self.core))
        create = self.api.create_namespaced_custom_object

        def recording_create(*args: Any, **kwargs: Any) -> dict[str, Any]:
            body = args[-1] if args else kwargs["body"]
            self.created.append((body["metadata"]["name"], self.operator.live()))
            return create(*args, **kwargs)

        self.api.create_namespaced_custom_object = recording_create  # type: ignore[method-assign]

    def curve(self, cfg: dict[str, Any]) -> list[float]:
        attempt = len(self.created)
        if attempt in self.fail_attempts:
            raise JobFails("Master replica failed with exit code 1", epochs=1)
        return [0.6, 0.8]

    def jobs(self) -> list[dict[str, Any]]:
        return self.api.stored(PLURAL)

    def step(self, tmp_path: Path, *, tag: str = "", **launch: Any):
        write_tiny_training_set("memory://bucket/train.parquet")
        cfg = {"backend": "kubeflow", "output_root": "memory://bucket/runs", "world_size": 2,
               "kubeflow": {"namespace": "ml", "wait": {"poll_interval_s": 7}}, **launch}
        return train_step("memory://bucket/train.parquet", model_dir=str(tmp_path / f"model{tag}"),
                          run_dir=str(tmp_path / f"run{tag}"), trainer_config=defaults.TRAINER_CONFIG, launch=cfg,
                          run_id="run-7", task="train", clock=self.clock.clock())


@pytest.fixture()
def cluster(monkeypatch: pytest.MonkeyPatch) -> Cluster:
    return Cluster(monkeypatch)


def test_success_submits_a_valid_job_polls_at_the_configured_interval_and_lands_the_model(
        cluster: Cluster, tmp_path: Path) -> None:
    out = cluster.step(tmp_path)
    (job,) = cluster.jobs()
    validate_pytorchjob(job)
    assert job["metadata"]["name"] == STEP == out.name and out.attempt == 1 and not out.adopted
    assert job["metadata"]["labels"][STEP_LABEL] == STEP and job["metadata"]["labels"][ATTEMPT_LABEL] == "1"
    assert set(cluster.clock.sleeps) == {7.0}  # KubeflowOptions.wait.poll_interval_s takes effect
    assert (tmp_path / "model" / "model.safetensors").read_bytes() == (tiny_model() / "model.safetensors").read_bytes()
    assert read_bundle(str(tmp_path / "model")).reference.height == tiny_training_set().height  # bundle written
    assert out.metrics["test_auc"] == 0.9 and out.model_metadata()["attempt"] == 1
    assert f"== attempt 1 {STEP}: Pending, created" in (tmp_path / "run" / "logs.txt").read_text()


def test_transient_api_errors_on_create_and_status_do_not_fail_the_step(cluster: Cluster, tmp_path: Path) -> None:
    cluster.api.fail_next("create", ApiException(status=429, reason="Too Many Requests"))
    cluster.api.fail_next("get", ApiException(status=503, reason="Service Unavailable"), times=3)
    out = cluster.step(tmp_path)
    assert out.metrics["test_auc"] == 0.9 and len(cluster.jobs()) == 1
    assert cluster.clock.sleeps[:4] == [1.0, 1.0, 2.0, 4.0]  # create backoff, then the status backoffs


def test_a_non_transient_api_error_fails_the_step_but_leaves_the_job_to_adopt(cluster: Cluster, tmp_path: Path
                                                                             ) -> None:
    cluster.api.script(STEP, "-")  # lets the job be created and read once before the error
    cluster.api.fail_next("get", ApiException(status=403, reason="Forbidden"))
    with pytest.raises(ApiException, match="403"):
        cluster.step(tmp_path)
    out = cluster.step(tmp_path, tag="-retry")
    assert out.adopted and len(cluster.jobs()) == 1


def test_a_failed_job_fails_the_step_and_the_retry_starts_a_fresh_attempt_that_succeeds(
        cluster: Cluster, tmp_path: Path) -> None:
    cluster.fail_attempts = {1}
    with pytest.raises(LaunchError, match=r"(?s)attempt 1\) failed: PyTorchJobFailed: Master replica failed"):
        cluster.step(tmp_path)
    out = cluster.step(tmp_path, tag="-retry")  # KFP retries the step: same run id and task
    assert out.attempt == 2 and out.name == f"{STEP}-a2" and out.metrics["test_auc"] == 0.9
    assert [name for name, _ in cluster.created] == [STEP, f"{STEP}-a2"]
    assert all(live == [] for _, live in cluster.created)  # never two live jobs for the step
    log = (tmp_path / "run-retry" / "logs.txt").read_text()
    assert f"== attempt 1 {STEP}: Failed, ended before: PyTorchJobFailed" in log
    assert f"== attempt 2 {STEP}-a2: Pending, created" in log
    validate_pytorchjob(cluster.jobs()[1])


def test_a_retry_adopts_a_running_job_and_a_succeeded_one(cluster: Cluster, tmp_path: Path) -> None:
    cluster.clock.on_sleep = lambda n: (_ for _ in ()).throw(SimulatedCrash("step pod evicted")) if n == 2 else None
    with pytest.raises(SimulatedCrash):
        cluster.step(tmp_path)
    cluster.clock.on_sleep = None
    running = cluster.step(tmp_path, tag="-retry")
    again = cluster.step(tmp_path, tag="-again")  # the job succeeded: adopted, not run again
    assert running.adopted and again.adopted and len(cluster.created) == 1
    assert "Running, adopted" in (tmp_path / "run-retry" / "logs.txt").read_text()
    assert "Succeeded, adopted" in (tmp_path / "run-again" / "logs.txt").read_text()


def test_a_crash_right_after_create_then_retry_runs_exactly_one_job(cluster: Cluster, tmp_path: Path) -> None:
    cluster.api.crash_after_create()
    with pytest.raises(SimulatedCrash):
        cluster.step(tmp_path)
    out = cluster.step(tmp_path, tag="-retry")
    assert out.adopted and [o["metadata"]["name"] for o in cluster.jobs()] == [STEP]


def test_a_job_deleted_by_someone_else_fails_the_step_and_the_retry_starts_over(cluster: Cluster, tmp_path: Path
                                                                                ) -> None:
    cluster.clock.on_sleep = lambda n: cluster.api.delete_namespaced_custom_object(
        "kubeflow.org", "v1", "ml", PLURAL, STEP) if n == 1 else None
    with pytest.raises(LaunchError, match=r"cancelled: .* no longer exists"):
        cluster.step(tmp_path)
    cluster.clock.on_sleep = None
    out = cluster.step(tmp_path, tag="-retry")  # nothing of the step is left: its name is free again
    assert not out.adopted and [name for name, _ in cluster.created] == [STEP, STEP]


def test_the_deadline_with_grace_deletes_the_job_and_fails_the_step(cluster: Cluster, tmp_path: Path) -> None:
    cluster.operator.objective = lambda cfg: [0.5] * 1000  # never finishes in time
    launch = {"timeout_s": 60, "kubeflow": {"namespace": "ml", "wait": {"poll_interval_s": 10,
                                                                        "deadline_grace_s": 30}}}
    with pytest.raises(LaunchError, match="did not finish within 90s"):
        cluster.step(tmp_path, **launch)
    assert cluster.jobs() == [] and sum(cluster.clock.sleeps) == pytest.approx(90)
    assert (tmp_path / "run" / "logs.txt").exists()


def test_sigterm_while_waiting_deletes_the_job_and_exits_143(cluster: Cluster, tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    cluster.clock.on_sleep = lambda n: os.kill(os.getpid(), signal.SIGTERM) if n == 2 else None
    with pytest.raises(Terminated) as err:
        cluster.step(tmp_path)
    assert err.value.code == 143 and cluster.jobs() == []
    assert cluster.api.deletions == [(STEP, "Foreground")]
    assert signal.getsignal(signal.SIGTERM) is before and (tmp_path / "run" / "logs.txt").exists()


def test_sigterm_during_the_create_still_deletes_what_was_created(cluster: Cluster, tmp_path: Path) -> None:
    create = cluster.api.create_namespaced_custom_object

    def create_then_sigterm(*args: Any, **kwargs: Any) -> dict[str, Any]:
        created = create(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the API call is still returning
        return created

    cluster.api.create_namespaced_custom_object = create_then_sigterm  # type: ignore[method-assign]
    with pytest.raises(Terminated, match="while creating"):
        cluster.step(tmp_path)
    assert [name for name, _ in cluster.created] == [STEP] and cluster.jobs() == []


@pytest.mark.parametrize("option,fail,kept", [("delete_on_success", False, 0), ("delete_on_failure", True, 0),
                                              ("delete_on_failure", False, 1)])
def test_cleanup_options_take_effect(cluster: Cluster, tmp_path: Path, option: str, fail: bool, kept: int) -> None:
    cluster.fail_attempts = {1} if fail else set()
    launch = {"kubeflow": {"namespace": "ml", option: True}}
    if fail:
        with pytest.raises(LaunchError):
            cluster.step(tmp_path, **launch)
    else:
        cluster.step(tmp_path, **launch)
    assert len(cluster.jobs()) == kept


def test_a_job_of_the_step_with_another_spec_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    cluster.step(tmp_path)
    with pytest.raises(ResourceConflict, match="different spec"):
        cluster.step(tmp_path, tag="-other", world_size=3)


def test_the_wrapper_trains_on_the_kubeflow_backend(cluster: Cluster, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    out = outputs(tmp_path, model=dsl.Model, run=dsl.Artifact, metrics=dsl.Metrics)
    data = dsl.Dataset(name="training_set", uri="minio://mlpipeline/v2/artifacts/run-w/training_set", metadata={})
    local = tmp_path / "downloaded" / "training_set"  # where KFP's launcher would have put the artifact's copy
    write_tiny_training_set(str(local))
    monkeypatch.setattr(dsl.Dataset, "path", property(lambda self: str(local)))
    launch = json.dumps({"backend": "kubeflow", "output_root": "memory://bucket/wrapped",
                         "kubeflow": {"namespace": "ml", "wait": {"poll_interval_s": 0.01}}})
    auc = train.python_func(training_set=data, trainer_config=json.loads(defaults.TRAINER_CONFIG), launch=launch,
                            run_id="run-w", task="train", **out)
    assert auc == 0.9 and out["model"].metadata["attempt"] == 1 and out["metrics"].metadata["test_auc"] == 0.9
    assert Path(out["model"].path, "model_card.json").exists() and len(cluster.jobs()) == 1
    # the job reads the artifact where the pods can (its URI, MinIO as S3), not the step's /minio/... path
    assert trainer_args(cluster.jobs()[0])["data-uri"] == "s3://mlpipeline/v2/artifacts/run-w/training_set"


def test_the_wrapper_refuses_to_send_a_step_local_training_set_to_the_cluster(cluster: Cluster, tmp_path: Path
                                                                               ) -> None:
    out = outputs(tmp_path, model=dsl.Model, run=dsl.Artifact, metrics=dsl.Metrics)
    data = outputs(tmp_path, training_set=dsl.Dataset)["training_set"]
    launch = json.dumps({"backend": "kubeflow", "output_root": "memory://bucket/wrapped"})
    with pytest.raises(ConfigError, match="cannot read the step's local file"):
        train.python_func(training_set=data, trainer_config={}, launch=launch, run_id="r", task="train", **out)
    assert cluster.jobs() == []
