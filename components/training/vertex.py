"""Vertex backend: the trainer as a Vertex AI CustomJob (chief pool + worker pool).

Every job is labelled with its step (the deterministic name), its attempt number and a hash of its worker pools,
so a retried step finds its attempts by label (also after dying between submit and any bookkeeping): it adopts a
running or succeeded one and otherwise submits the next attempt. SIGTERM and the deadline cancel the job;
429 / 5xx answers are retried with backoff. The job client is injected (``VertexJobClient``);
``AiplatformJobClient`` is the thin adapter over ``aiplatform.CustomJob``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, Self

from components._core.jobs import JobPhase, JobStatus, RunningJob, WaitPolicy, attempt_name, call_with_retry
from components._core.k8s_meta import MANAGED_BY, canonical
from components._core.waiting import Clock
from components.training.launch import LaunchConfig, LaunchError, LaunchSpec, TrainingBackend, VertexConfig
from components.training.pytorchjob import trainer_command

log = logging.getLogger(__name__)
STEP_LABEL, ATTEMPT_LABEL, HASH_LABEL = "kfp-catalog-step", "kfp-catalog-attempt", "kfp-catalog-spec"
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

    def create(self, display_name: str, worker_pool_specs: list[dict[str, Any]], *, labels: dict[str, str],
               timeout_s: int) -> str:
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


def transient_google_error(err: BaseException) -> bool:
    """429 and 5xx answers of the Vertex API, and connection errors: worth retrying."""
    from google.api_core import exceptions as gexc

    kinds = (gexc.TooManyRequests, gexc.InternalServerError, gexc.BadGateway, gexc.ServiceUnavailable,
             gexc.GatewayTimeout, ConnectionError, TimeoutError)
    return isinstance(err, kinds)


def build_worker_pool_specs(spec: LaunchSpec, cfg: VertexConfig) -> list[dict[str, Any]]:
    """Pool 0 is the chief (1 replica), pool 1 the workers (world_size-1); same container for both."""
    if not spec.image:
        raise ValueError("LaunchSpec.image is required for a Vertex CustomJob")
    machine: dict[str, Any] = {"machine_type": cfg.machine_type}
    if spec.resources.gpus > 0:
        machine.update(accelerator_type=cfg.accelerator_type, accelerator_count=spec.resources.gpus)
    # the trainer reads Vertex's CLUSTER_SPEC itself; CATALOG_IMAGE goes into the model card's lineage
    env = [{"name": "CATALOG_IMAGE", "value": spec.image}, {"name": "PYTHONUNBUFFERED", "value": "1"}]
    pool = {
        "container_spec": {"command": trainer_command(spec), "env": env, "image_uri": spec.image},
        "disk_spec": {"boot_disk_size_gb": cfg.boot_disk_size_gb, "boot_disk_type": "pd-ssd"},
        "machine_spec": machine,
    }
    pools = [{**pool, "replica_count": 1}]
    if spec.world_size > 1:
        pools.append({**pool, "replica_count": spec.world_size - 1})
    return [canonical(p) for p in pools]


def pools_hash(pools: list[dict[str, Any]]) -> str:
    """A label-sized hash of the worker pools (what a job runs, whatever its attempt)."""
    doc = json.dumps(canonical(pools), separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()[:40]  # label values hold at most 63 characters


class VertexJobRun(RunningJob):
    """Handle on one CustomJob."""

    def __init__(self, client: VertexJobClient, name: str, resource_name: str, *, attempt: int,
                 policy: WaitPolicy):
        self.name, self.resource_name, self.attempt = name, resource_name, attempt
        self._client, self._policy = client, policy

    @property
    def policy(self) -> WaitPolicy:
        return self._policy

    def status(self) -> JobStatus:
        info = self._client.get(self.resource_name)
        phase = _PHASES.get(info.state, JobPhase.PENDING)
        return JobStatus(phase, info.error, {"state": info.state, "resource_name": self.resource_name})

    def cancel(self) -> None:
        status = self.status()
        if not status.phase.terminal and status.details["state"] != "JOB_STATE_CANCELLING":
            self._client.cancel(self.resource_name)

    def logs(self) -> str:
        try:
            s = self.status()
            state, error = s.details["state"], s.message
        except Exception as err:  # the step's outcome must win over a status error here
            state, error = "unknown", f"status unavailable: {err}"
        job_id = self.resource_name.rsplit("/", 1)[-1]
        return (f"Vertex CustomJob {self.resource_name} ({self.name}, attempt {self.attempt}): {state}\n"
                + (f"error: {error}\n" if error else "")
                + f'logs: Cloud Logging, resource.labels.job_id="{job_id}"\n')


def default_client(cfg: VertexConfig) -> VertexJobClient:
    """The real client for ``cfg``'s project and region (credentials from the environment)."""
    return AiplatformJobClient(cfg)


class VertexTrainingBackend(TrainingBackend):
    """Runs the trainer as a Vertex AI CustomJob through a ``VertexJobClient`` (made from the config on first
    use unless injected)."""

    max_name_len = 128

    def __init__(self, config: VertexConfig | dict[str, Any] | str, *, client: VertexJobClient | None = None,
                 client_factory: Callable[[VertexConfig], VertexJobClient] | None = None,
                 clock: Clock | None = None):
        self.config = VertexConfig.parse(config)
        self._client, self._factory, self._clock = client, client_factory, clock

    @classmethod
    def from_config(cls, cfg: LaunchConfig, *, run_id: str, task: str, log_dir: str | None = None,
                    clock: Clock | None = None) -> Self:
        assert cfg.vertex is not None  # LaunchConfig requires it for backend=vertex
        return cls(cfg.vertex, clock=clock)

    @property
    def client(self) -> VertexJobClient:
        """The job client (built on first use)."""
        if self._client is None:
            self._client = (self._factory or default_client)(self.config)
        return self._client

    def _policy(self, spec: LaunchSpec) -> WaitPolicy:
        return self.config.wait.policy(spec.timeout_s, transient_google_error)

    def attempts(self, spec: LaunchSpec) -> list[RunningJob]:
        digest = pools_hash(build_worker_pool_specs(spec, self.config))
        found = call_with_retry(lambda: self.client.find({STEP_LABEL: spec.step_name}), self._policy(spec),
                                what=f"find Vertex jobs of {spec.step_name}", clock=self._clock)
        jobs: list[RunningJob] = []
        for resource, labels in found:
            if labels.get(HASH_LABEL) != digest:
                raise LaunchError(f"Vertex job {resource} of step {spec.step_name} runs other worker pools "
                                  f"({labels.get(HASH_LABEL)} != {digest}); refusing to adopt or resubmit")
            label = labels.get(ATTEMPT_LABEL, "1")
            attempt = int(label) if label.isdigit() else 1
            name = attempt_name(spec.step_name, attempt, self.max_name_len)
            jobs.append(VertexJobRun(self.client, name, resource, attempt=attempt, policy=self._policy(spec)))
        return jobs

    def create(self, spec: LaunchSpec) -> VertexJobRun:
        pools = build_worker_pool_specs(spec, self.config)
        labels = {**self.config.labels, "managed-by": MANAGED_BY, STEP_LABEL: spec.step_name,
                  ATTEMPT_LABEL: str(spec.attempt), HASH_LABEL: pools_hash(pools)}
        resource = call_with_retry(
            lambda: self.client.create(spec.name, pools, labels=labels, timeout_s=spec.timeout_s),
            self._policy(spec), what=f"submit Vertex job {spec.name}", clock=self._clock)
        log.info("submitted Vertex job %s (%s, attempt %d)", resource, spec.name, spec.attempt)
        return VertexJobRun(self.client, spec.name, resource, attempt=spec.attempt, policy=self._policy(spec))


class AiplatformJobClient:
    """``VertexJobClient`` over ``google.cloud.aiplatform.CustomJob`` (imported on first use; network)."""

    def __init__(self, config: VertexConfig, *, credentials: Any = None):
        self.config, self.credentials = config, credentials
        self._jobs: dict[str, Any] = {}

    def _where(self) -> dict[str, Any]:
        return {"project": self.config.project, "location": self.config.location, "credentials": self.credentials}

    def create(self, display_name: str, worker_pool_specs: list[dict[str, Any]], *, labels: dict[str, str],
               timeout_s: int) -> str:
        from google.cloud import aiplatform

        job = aiplatform.CustomJob(display_name=display_name, worker_pool_specs=worker_pool_specs, labels=labels,
                                   staging_bucket=self.config.staging_bucket, **self._where())
        job.submit(service_account=self.config.service_account, network=self.config.network, timeout=timeout_s)
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
        state = job.state.name  # one read of the live resource (``job.error`` would read it again)
        error = job._gca_resource.error
        return JobInfo(state, error.message if error is not None and error.message else "")

    def cancel(self, resource_name: str) -> None:
        self._job(resource_name).cancel()
