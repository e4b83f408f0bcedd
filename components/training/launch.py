"""The one launch module: how the trainer runs as a job, on every backend, for the training step and for every
tuning trial.

- The trainer's file contract (stated here only): ``python -m components.training.trainer --config JSON
  --data-uri URI --output-uri URI`` writes under the output URI ``metrics.jsonl`` (one JSON object per epoch,
  ``{"epoch": int, <metric>: float, ...}``, rewritten as training goes so tuners can prune), ``checkpoints/``,
  and at the end ``model/`` (safetensors + ``model_card.json``) and ``final_metrics.json``.
- ``LaunchConfig``: the backend and its options, one model per backend (``LocalOptions``, ``KubeflowOptions``,
  ``VertexConfig``), each with the ``WaitOptions`` its jobs are waited with.
- ``BACKENDS``: the backend table (imported on use, no registration by import side effect).
- ``start`` / ``run``: a step's attempt started or adopted, then waited on through the one wait path
  (``components._core.jobs``).
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator

from components._core.artifacts import ArtifactError, is_local, read_json, shared_uri
from components._core.backends import Backend, load_backend
from components._core.config import ConfigError, StrictConfig
from components._core.images import image
from components._core.jobs import (
    JobPhase,
    JobStatus,
    Launch,
    RunningJob,
    WaitPolicy,
    never_transient,
    start_or_adopt,
    wait,
)
from components._core.jobs import attempt_name as _attempt_name
from components._core.k8s_meta import canonical
from components._core.waiting import Clock, DeadlineExceeded

TRAINER_MODULE = "components.training.trainer"
METRICS_FILE = "metrics.jsonl"
FINAL_METRICS_FILE = "final_metrics.json"
MODEL_DIR = "model"
CARD_FILE = "model_card.json"  # in MODEL_DIR, beside the weights: read by steps whose images have no torch
CHECKPOINTS_DIR = "checkpoints"
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$")
LOG_TAIL_LINES = 30


class LaunchError(RuntimeError):
    """A launched job did not succeed; the message says why and where its logs are."""


# ---------------------------------------------------------------- the trainer's contract


def output_file(output_uri: str, name: str) -> str:
    """URI of a file (or folder) the trainer writes under ``output_uri``."""
    return f"{output_uri.rstrip('/')}/{name}"


def trainer_args(trainer_config: dict[str, Any], data_uri: str, output_uri: str, data_version: str = "") -> list[str]:
    """``-m components.training.trainer --config ... --data-uri ... --output-uri ... [--data-version V]`` (config
    as canonical JSON), the arguments every backend passes to its Python."""
    config = json.dumps(canonical(trainer_config), separators=(",", ":"))
    args = ["-m", TRAINER_MODULE, "--config", config, "--data-uri", data_uri, "--output-uri", output_uri]
    return [*args, "--data-version", data_version] if data_version else args


def read_final_metrics(output_uri: str) -> dict[str, Any]:
    """The trainer's ``final_metrics.json``."""
    metrics: dict[str, Any] = read_json(output_file(output_uri, FINAL_METRICS_FILE))
    return metrics


# ---------------------------------------------------------------- configuration


class WaitOptions(StrictConfig):
    """How the step waits on its job: polling, deadline grace, and tolerance of transient API errors."""

    poll_interval_s: float = Field(5.0, gt=0, le=600, description="seconds between status reads")
    deadline_grace_s: int = Field(300, ge=0, le=7200, description="wait this long past the job's own deadline")
    backoff_max_s: float = Field(60.0, ge=1, le=600, description="longest backoff after a transient API error")
    transient_budget_s: float = Field(
        900.0, ge=0, le=86400, description="fail the step after transient API errors for this long in a row")

    def policy(self, timeout_s: float, transient: Callable[[BaseException], bool] | None = None) -> WaitPolicy:
        """The ``WaitPolicy`` of a job with its own deadline ``timeout_s``."""
        return WaitPolicy(poll_interval_s=self.poll_interval_s, deadline_s=timeout_s + self.deadline_grace_s,
                          transient=transient or never_transient, backoff_max_s=self.backoff_max_s,
                          transient_budget_s=self.transient_budget_s)


class Resources(StrictConfig):
    """Per-replica resources."""

    cpu: str = Field("1", description="CPU request and limit, Kubernetes quantity")
    memory: str = Field("2Gi", description="memory request and limit, Kubernetes quantity")
    gpus: int = Field(0, ge=0, le=16, description="GPUs per replica (NCCL is used when > 0)")


class LocalOptions(StrictConfig):
    """Local processes under ``torch.distributed.run``."""

    wait: WaitOptions = Field(default_factory=lambda: WaitOptions(poll_interval_s=0.5, deadline_grace_s=60),
                              description="how the step waits")
    grace_s: float = Field(10.0, ge=0, le=600, description="SIGTERM to SIGKILL delay when cancelling")
    stream_logs: bool = Field(True, description="copy every rank's log lines to the step's stdout")


class KubeflowOptions(StrictConfig):
    """Where and how PyTorchJobs run."""

    namespace: str = Field("kubeflow", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63,
                           description="namespace of the PyTorchJob")
    service_account: str | None = Field(None, description="service account of the training pods")
    clean_pod_policy: Literal["All", "Running", "None"] = Field("All", description="pods to delete when done")
    ttl_seconds_after_finished: int | None = Field(86400, ge=0, description="delete the job this long after")
    backoff_limit: int = Field(3, ge=0, le=100, description="pod restarts before the job fails")
    restart_policy: Literal["ExitCode", "OnFailure", "Never", "Always"] = Field("ExitCode")
    secret_env: dict[str, tuple[str, str]] = Field(default_factory=dict, description="env var -> (Secret name, key)")
    node_selector: dict[str, str] = Field(default_factory=dict)
    image_pull_secrets: list[str] = Field(default_factory=list)
    run_as_user: int = Field(10001, ge=1, description="non-root uid (the catalog images use 10001)")
    wait: WaitOptions = Field(default_factory=lambda: WaitOptions(poll_interval_s=10.0),
                              description="how the step waits")
    delete_on_success: bool = Field(False, description="delete the job when it succeeds")
    delete_on_failure: bool = Field(False, description="delete the job when it fails (else kept for the TTL)")


class VertexConfig(StrictConfig):
    """Where and how Vertex AI CustomJobs run (credentials come from the environment, never parameters)."""

    project: str = Field(min_length=1, description="Google Cloud project")
    location: str = Field("us-central1", min_length=1, description="Vertex AI region")
    staging_bucket: str = Field(pattern=r"^gs://", description="gs:// bucket for CustomJob staging")
    service_account: str | None = Field(None, description="service account the jobs run as")
    network: str | None = Field(None, description="VPC network to peer with, if any")
    machine_type: str = Field("n1-standard-8", min_length=1, description="machine type of every replica")
    accelerator_type: str = Field("NVIDIA_TESLA_T4", description="accelerator used when resources.gpus > 0")
    boot_disk_size_gb: int = Field(100, ge=10, le=65536)
    labels: dict[str, str] = Field(default_factory=dict, description="extra job labels")
    wait: WaitOptions = Field(default_factory=lambda: WaitOptions(poll_interval_s=30.0, deadline_grace_s=900),
                              description="how the step waits")


class LaunchConfig(StrictConfig):
    """How training (and each tuning trial) is launched; ``backend`` picks the platform."""

    backend: Backend = Field(Backend.LOCAL, description="local processes, a PyTorchJob, or a Vertex CustomJob")
    world_size: int = Field(2, ge=1, le=256, description="processes: local ranks, or master + workers")
    image: str = Field(default_factory=lambda: image("torch"), description="trainer image for cluster backends")
    resources: Resources = Field(default_factory=Resources, description="per-replica resources")
    timeout_s: int = Field(3600, ge=10, le=7 * 86400, description="deadline for one training job")
    output_root: str = Field("", description="shared storage (gs://, s3://) for cluster jobs' outputs")
    local: LocalOptions = Field(default_factory=LocalOptions, description="local process options")
    kubeflow: KubeflowOptions = Field(default_factory=KubeflowOptions, description="PyTorchJob options")
    vertex: VertexConfig | None = Field(None, description="Vertex project and CustomJob options (backend=vertex)")

    @model_validator(mode="after")
    def _cluster_needs_shared_storage(self) -> Self:
        if self.backend != Backend.LOCAL and (not self.output_root or is_local(self.output_root)):
            raise ValueError(f"output_root must be shared storage (gs:// or s3://) for backend {self.backend}")
        if self.backend == Backend.VERTEX and self.vertex is None:
            raise ValueError("vertex (project, location, staging_bucket) is required for backend=vertex")
        return self

    def wait_options(self) -> WaitOptions:
        """The wait options of the chosen backend."""
        if self.backend == Backend.VERTEX:
            assert self.vertex is not None
            return self.vertex.wait
        return self.kubeflow.wait if self.backend == Backend.KUBEFLOW else self.local.wait


class LaunchSpec(StrictConfig):
    """One training job: what to run and where it writes. ``step`` is the deterministic name every attempt of
    the step shares; ``name`` is this attempt's job name (the step name for attempt 1)."""

    name: str = Field(description="job name: a DNS-1123 label of at most 53 characters")
    step: str = Field("", description="name shared by the step's attempts; empty: the same as name")
    attempt: int = Field(1, ge=1, le=100, description="attempt number of the step")
    trainer_config: dict[str, Any] = Field(description="TrainerConfig as a JSON-able dict")
    data_uri: str = Field(min_length=1, description="training set (Parquet) URI")
    output_uri: str = Field(min_length=1, description="folder the trainer writes metrics, checkpoints, model to")
    world_size: int = Field(2, ge=1, le=256, description="total processes (local ranks or replicas)")
    image: str = Field("", description="container image for cluster backends")
    resources: Resources = Field(default_factory=Resources)
    timeout_s: int = Field(3600, ge=10, le=7 * 86400, description="deadline for the whole job")
    data_version: str = Field("", max_length=200, description="version of the training data, for the model card")

    @field_validator("name")
    @classmethod
    def _dns(cls, v: str) -> str:
        if not DNS1123.match(v):
            raise ValueError("must be a DNS-1123 label of at most 53 characters (lowercase, digits, '-')")
        return v

    @property
    def step_name(self) -> str:
        """The name shared by every attempt of this step."""
        return self.step or self.name

    def for_attempt(self, attempt: int, max_len: int = 53) -> LaunchSpec:
        """This spec as attempt ``attempt`` of its step (same output: a new attempt resumes from checkpoints)."""
        return self.model_copy(update={"step": self.step_name, "attempt": attempt,
                                        "name": _attempt_name(self.step_name, attempt, max_len)})

    def trainer_args(self) -> list[str]:
        """The trainer's arguments for this job."""
        return trainer_args(self.trainer_config, self.data_uri, self.output_uri, self.data_version)


# ---------------------------------------------------------------- backends


class TrainingBackend(ABC):
    """Starts training jobs on one platform. A backend finds a step's earlier attempts and creates new ones;
    ``start`` / ``run`` decide which (adopt or create) and wait."""

    max_name_len: ClassVar[int] = 53

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: LaunchConfig, *, run_id: str, task: str, log_dir: str | None = None,
                    clock: Clock | None = None) -> Self:
        """The backend configured by ``cfg`` (clients made on first use)."""

    @abstractmethod
    def attempts(self, spec: LaunchSpec) -> list[RunningJob]:
        """Jobs already made for ``spec.step_name`` (any attempt, any state)."""

    @abstractmethod
    def create(self, spec: LaunchSpec) -> RunningJob:
        """Submit a new job named ``spec.name`` (attempt ``spec.attempt`` of ``spec.step_name``)."""


BACKENDS: dict[Backend, str] = {
    Backend.LOCAL: "components.training.local:LocalTrainingBackend",
    Backend.KUBEFLOW: "components.training.kubeflow:KubeflowTrainingBackend",
    Backend.VERTEX: "components.training.vertex:VertexTrainingBackend",
}


def make_backend(cfg: LaunchConfig, *, run_id: str, task: str, log_dir: str | None = None,
                 clock: Clock | None = None) -> TrainingBackend:
    """The configured backend, from the backend table."""
    cls = load_backend(BACKENDS, cfg.backend, "training")
    backend: TrainingBackend = cls.from_config(cfg, run_id=run_id, task=task, log_dir=log_dir, clock=clock)
    return backend


def job_data_uri(cfg: LaunchConfig, data_path: str, data_uri: str = "") -> str:
    """Where the job reads the training set: the step's own path for local processes; for cluster jobs, which
    cannot see the step's files, the artifact's URI (``shared_uri``)."""
    if cfg.backend == Backend.LOCAL:
        return data_path
    try:
        return shared_uri(data_path, data_uri, who=f"{cfg.backend} jobs")
    except ArtifactError as err:
        raise ConfigError(f"invalid LaunchConfig.backend: {err}; or use backend 'local'") from None


def launch_spec(cfg: LaunchConfig, *, name: str, trainer_config: dict[str, Any], data_path: str,
                local_output: str, data_uri: str = "", data_version: str = "") -> LaunchSpec:
    """A ``LaunchSpec`` reading the training set where the job can (``job_data_uri``) and writing to
    ``local_output`` (local) or ``output_root/name`` (cluster)."""
    from components.training.config import TrainerConfig

    output = local_output if cfg.backend == Backend.LOCAL else f"{cfg.output_root.rstrip('/')}/{name}"
    # None fields are left out: they equal their defaults, and KFP dict parameters cannot carry null.
    tc = TrainerConfig.parse(trainer_config).model_dump(mode="json", exclude_none=True)
    return LaunchSpec(name=name, trainer_config=tc, data_uri=job_data_uri(cfg, data_path, data_uri),
                      output_uri=output, world_size=cfg.world_size, image=cfg.image, resources=cfg.resources,
                      timeout_s=cfg.timeout_s, data_version=data_version)


def start(spec: LaunchSpec, backend: TrainingBackend, *, clock: Clock | None = None) -> Launch:
    """Adopt the step's live or succeeded job, or create its next attempt (never two live jobs)."""
    return start_or_adopt(backend.attempts(spec),
                          lambda n: backend.create(spec.for_attempt(n, backend.max_name_len)),
                          clock=clock, what="training job")


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def run(spec: LaunchSpec, backend: TrainingBackend, *, logs_uri: str | None = None, clock: Clock | None = None,
        on_status: Callable[[JobStatus], None] | None = None) -> Launch:
    """Start or adopt the step's job and wait until it ends (SIGTERM and the deadline cancel it). The attempt
    history and the job's logs go to ``logs_uri`` however it ends. Raises ``LaunchError`` unless it succeeded."""
    from components._core.artifacts import write_text

    launch = start(spec, backend, clock=clock)
    job, logs = launch.job, ""
    try:
        status = wait(job, clock=clock, on_status=on_status)
    except DeadlineExceeded as err:
        raise LaunchError(f"training job {job.name}: {err}" + (f"; logs: {logs_uri}" if logs_uri else "")) from err
    finally:
        logs = job.logs()
        if logs_uri:
            write_text(launch.history_text() + logs, logs_uri)
    if status.phase is not JobPhase.SUCCEEDED:
        message = f"training job {job.name} (attempt {job.attempt}) {status.phase.value.lower()}"
        message += f": {status.message}" if status.message else ""
        tail = _tail(logs)
        if tail and tail not in status.message:
            message += f"\n--- last {LOG_TAIL_LINES} log lines ---\n{tail}"
        raise LaunchError(message + (f"\nlogs: {logs_uri}" if logs_uri else ""))
    return launch
