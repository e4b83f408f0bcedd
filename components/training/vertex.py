"""Vertex backend: the trainer as a Vertex AI CustomJob (chief pool + worker pool).

A retried step never submits a second job: the job's resource name is recorded in a state file keyed by the
deterministic name, and every job carries that name and its spec hash as labels, so a step that died between
submit and the state write still finds it. SIGTERM and the deadline cancel the job. The job client is
injected (``VertexJobClient``); ``AiplatformJobClient`` is the thin adapter over ``aiplatform.CustomJob``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import Field

from components._core import artifacts
from components._core.backends import Backend, register
from components._core.config import StrictConfig
from components._core.k8s import on_sigterm
from components._core.k8s_meta import MANAGED_BY, canonical
from components._core.waiting import Clock, DeadlineExceeded, wait_for
from components.training.launch import (
    JobPhase,
    JobStatus,
    LaunchError,
    LaunchSpec,
    RunningJob,
    TrainingBackend,
)
from components.training.pytorchjob import trainer_command

log = logging.getLogger(__name__)
NAME_LABEL, HASH_LABEL = "kfp-catalog-name", "kfp-catalog-spec"
_PHASES = {
    "JOB_STATE_UNSPECIFIED": JobPhase.PENDING,
    "JOB_STATE_QUEUED": JobPhase.PENDING,
    "JOB_STATE_PENDING": JobPhase.PENDING,
    "JOB_STATE_RUNNING": JobPhase.RUNNING,
    "JOB_STATE_UPDATING": JobPhase.RUNNING,
    "JOB_STATE_PAUSED": JobPhase.RUNNING,
    "JOB_STATE_CANCELLING": JobPhase.RUNNING,
    "JOB_STATE_SUCCEEDED": JobPhase.SUCCEEDED,
    "JOB_STATE_FAILED": JobPhase.FAILED,
    "JOB_STATE_EXPIRED": JobPhase.FAILED,
    "JOB_STATE_PARTIALLY_SUCCEEDED": JobPhase.FAILED,
    "JOB_STATE_CANCELLED": JobPhase.CANCELLED,
}


@dataclass(frozen=True)
class JobInfo:
    """What Vertex reports about a job."""

    state: str
    error: str = ""


class VertexJobClient(Protocol):
    """The few CustomJob operations the backend needs; tests inject a fake."""

    def create(
        self,
        display_name: str,
        worker_pool_specs: list[dict[str, Any]],
        *,
        labels: dict[str, str],
        timeout_s: int,
    ) -> str:
        """Submit a CustomJob and return its resource name (does not wait for it)."""
        ...

    def find(self, labels: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
        """``(resource name, labels)`` of jobs carrying all ``labels``, newest first."""
        ...

    def get(self, resource_name: str) -> JobInfo:
        """Current state of the job."""
        ...

    def cancel(self, resource_name: str) -> None:
        """Ask Vertex to cancel the job."""
        ...


class VertexOptions(StrictConfig):
    """Where and how CustomJobs run."""

    machine_type: str = Field("n1-standard-8", min_length=1, description="machine type of every replica")
    accelerator_type: str = Field("NVIDIA_TESLA_T4", description="accelerator used when resources.gpus > 0")
    boot_disk_size_gb: int = Field(100, ge=10, le=65536)
    state_dir: str = Field("", description="folder (local or gs://) for re-attach state files; '' = labels only")
    labels: dict[str, str] = Field(default_factory=dict, description="extra job labels")
    poll_interval_s: float = Field(30.0, gt=0, le=600)
    deadline_grace_s: int = Field(900, ge=0, le=7200, description="wait this long past spec.timeout_s")


def build_worker_pool_specs(
    spec: LaunchSpec,
    *,
    machine_type: str = "n1-standard-8",
    accelerator_type: str = "NVIDIA_TESLA_T4",
    boot_disk_size_gb: int = 100,
) -> list[dict[str, Any]]:
    """Pool 0 is the chief (1 replica), pool 1 the workers (world_size-1); same container for both."""
    if not spec.image:
        raise ValueError("LaunchSpec.image is required for a Vertex CustomJob")
    machine: dict[str, Any] = {"machine_type": machine_type}
    if spec.resources.gpus > 0:
        machine.update(accelerator_type=accelerator_type, accelerator_count=spec.resources.gpus)
    env = [{"name": "PYTHONUNBUFFERED", "value": "1"}]  # the trainer reads Vertex's CLUSTER_SPEC itself
    pool = {
        "container_spec": {"command": trainer_command(spec), "env": env, "image_uri": spec.image},
        "disk_spec": {"boot_disk_size_gb": boot_disk_size_gb, "boot_disk_type": "pd-ssd"},
        "machine_spec": machine,
    }
    pools = [{**pool, "replica_count": 1}]
    if spec.world_size > 1:
        pools.append({**pool, "replica_count": spec.world_size - 1})
    return [canonical(p) for p in pools]


def _spec_hash(display_name: str, pools: list[dict[str, Any]]) -> str:
    doc = json.dumps(canonical({"display_name": display_name, "pools": pools}), separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()[:40]  # label values hold at most 63 characters


class VertexJobRun(RunningJob):
    """Handle on one CustomJob."""

    def __init__(
        self,
        client: VertexJobClient,
        name: str,
        resource_name: str,
        *,
        timeout_s: float,
        interval_s: float,
        clock: Clock | None = None,
    ):
        self.name, self.resource_name = name, resource_name
        self._client, self._timeout_s, self._interval_s, self._clock = client, timeout_s, interval_s, clock

    def status(self) -> JobStatus:
        info = self._client.get(self.resource_name)
        phase = _PHASES.get(info.state, JobPhase.PENDING)
        return JobStatus(phase, info.error, {"state": info.state, "resource_name": self.resource_name})

    def cancel(self) -> None:
        if not self.status().phase.terminal:
            self._client.cancel(self.resource_name)

    def logs(self) -> str:
        s = self.status()
        return (
            f"Vertex CustomJob {self.resource_name} ({self.name}): {s.details['state']}\n"
            + (f"error: {s.message}\n" if s.message else "")
            + f'logs: Cloud Logging, resource.labels.job_id="{self.resource_name.rsplit("/", 1)[-1]}"\n'
        )

    def wait(self, *, logs_uri: str | None = None) -> JobStatus:
        """Block until the job ends; SIGTERM or the deadline cancel it. Raises ``LaunchError`` unless it
        succeeds."""
        try:
            with on_sigterm(self.cancel):
                try:
                    final = wait_for(
                        self.status,
                        lambda s: s.phase.terminal,
                        timeout_s=self._timeout_s,
                        interval_s=self._interval_s,
                        what=f"Vertex job {self.resource_name}",
                        clock=self._clock,
                    )
                except (DeadlineExceeded, KeyboardInterrupt):
                    self.cancel()
                    raise
        except DeadlineExceeded as err:
            raise LaunchError(f"{err}; the job was cancelled") from err
        finally:
            if logs_uri:
                artifacts.write_text(self.logs(), logs_uri)
        if final.phase is not JobPhase.SUCCEEDED:
            raise LaunchError(
                f"Vertex job {self.resource_name} ended {final.details['state']}: {final.message}"
                + (f"; logs: {logs_uri}" if logs_uri else "")
            )
        return final


@register("training", Backend.VERTEX)
class VertexTrainingBackend(TrainingBackend):
    """Runs the trainer as a Vertex AI CustomJob through an injected ``VertexJobClient``."""

    def __init__(
        self,
        options: VertexOptions | dict[str, Any] | str | None = None,
        *,
        client: VertexJobClient,
        clock: Clock | None = None,
    ):
        self.options = VertexOptions.parse(options)
        self._client, self._clock = client, clock

    def worker_pool_specs(self, spec: LaunchSpec) -> list[dict[str, Any]]:
        o = self.options
        return build_worker_pool_specs(
            spec,
            machine_type=o.machine_type,
            accelerator_type=o.accelerator_type,
            boot_disk_size_gb=o.boot_disk_size_gb,
        )

    def _state_uri(self, name: str) -> str | None:
        return f"{self.options.state_dir.rstrip('/')}/{name}.json" if self.options.state_dir else None

    def _recorded(self, name: str, digest: str) -> str | None:
        uri = self._state_uri(name)
        if uri is None:
            return None
        try:
            state = artifacts.read_json(uri)
        except FileNotFoundError:
            return None
        if state.get("spec_hash") != digest:
            raise LaunchError(
                f"{uri} records job {state.get('resource_name')} for a different spec "
                f"({state.get('spec_hash')} != {digest}); refusing to re-attach or resubmit"
            )
        return str(state["resource_name"])

    def _labelled(self, name: str, digest: str) -> str | None:
        found = self._client.find({NAME_LABEL: name})
        if not found:
            return None
        resource, labels = found[0]
        if labels.get(HASH_LABEL) != digest:
            raise LaunchError(
                f"Vertex job {resource} is labelled {name} but has spec {labels.get(HASH_LABEL)}, not {digest}"
            )
        return resource

    def start(self, spec: LaunchSpec) -> VertexJobRun:
        pools = self.worker_pool_specs(spec)
        digest = _spec_hash(spec.name, pools)
        resource = self._recorded(spec.name, digest) or self._labelled(spec.name, digest)
        if resource:
            log.info("re-attaching to Vertex job %s", resource)
        else:
            labels = {
                **self.options.labels,
                "managed-by": MANAGED_BY,
                NAME_LABEL: spec.name,
                HASH_LABEL: digest,
            }
            resource = self._client.create(spec.name, pools, labels=labels, timeout_s=spec.timeout_s)
            log.info("submitted Vertex job %s", resource)
        uri = self._state_uri(spec.name)
        if uri is not None:
            artifacts.write_json({"name": spec.name, "resource_name": resource, "spec_hash": digest}, uri)
        return VertexJobRun(
            self._client,
            spec.name,
            resource,
            clock=self._clock,
            timeout_s=spec.timeout_s + self.options.deadline_grace_s,
            interval_s=self.options.poll_interval_s,
        )

    def run(self, spec: LaunchSpec, *, logs_uri: str | None = None) -> JobStatus:
        """Start (or re-attach) and wait: the whole step. Raises ``LaunchError`` unless the job succeeds."""
        return self.start(spec).wait(logs_uri=logs_uri)


class AiplatformJobClient:
    """``VertexJobClient`` over ``google.cloud.aiplatform.CustomJob`` (imported on first use; network)."""

    def __init__(
        self,
        project: str,
        location: str,
        staging_bucket: str,
        *,
        credentials: Any = None,
        service_account: str | None = None,
        network: str | None = None,
    ):
        self.project, self.location, self.staging_bucket = project, location, staging_bucket
        self.credentials, self.service_account, self.network = credentials, service_account, network
        self._jobs: dict[str, Any] = {}

    def _where(self) -> dict[str, Any]:
        return {"project": self.project, "location": self.location, "credentials": self.credentials}

    def create(
        self,
        display_name: str,
        worker_pool_specs: list[dict[str, Any]],
        *,
        labels: dict[str, str],
        timeout_s: int,
    ) -> str:
        from google.cloud import aiplatform

        job = aiplatform.CustomJob(
            display_name=display_name,
            worker_pool_specs=worker_pool_specs,
            labels=labels,
            staging_bucket=self.staging_bucket,
            **self._where(),
        )
        job.submit(service_account=self.service_account, network=self.network, timeout=timeout_s)
        self._jobs[job.resource_name] = job
        return str(job.resource_name)

    def find(self, labels: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
        from google.cloud import aiplatform

        query = " AND ".join(f'labels.{k}="{v}"' for k, v in sorted(labels.items()))
        jobs = aiplatform.CustomJob.list(filter=query, order_by="create_time desc", **self._where())
        return [(str(j.resource_name), dict(j.labels)) for j in jobs]

    def _job(self, resource_name: str) -> Any:
        if resource_name not in self._jobs:
            from google.cloud import aiplatform

            self._jobs[resource_name] = aiplatform.CustomJob.get(resource_name, **self._where())
        return self._jobs[resource_name]

    def get(self, resource_name: str) -> JobInfo:
        job = self._job(resource_name)
        state = job.state.name
        error = job.error
        return JobInfo(state, error.message if error is not None and error.message else "")

    def cancel(self, resource_name: str) -> None:
        self._job(resource_name).cancel()
