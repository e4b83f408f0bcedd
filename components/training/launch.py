"""The training launch interface shared by every backend (local processes, PyTorchJob, Vertex CustomJob) and by
the tuner, which runs each trial through it.

Contract with the trainer program (``python -m components.training.trainer``):
- it reads its ``TrainerConfig`` JSON from ``--config`` and the training set from ``data_uri``;
- it writes under ``output_uri``: ``metrics.jsonl`` (one JSON object per epoch: ``{"epoch": int, <metric>: float}``,
  appended as training goes, so tuners can prune), ``checkpoints/``, and at the end ``model/`` (safetensors +
  ``model_card.json``) and ``final_metrics.json``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator

from components._core.config import StrictConfig

DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$")


class Resources(StrictConfig):
    """Per-replica resources."""

    cpu: str = Field("1", description="CPU request and limit, Kubernetes quantity")
    memory: str = Field("2Gi", description="memory request and limit, Kubernetes quantity")
    gpus: int = Field(0, ge=0, le=16, description="GPUs per replica (NCCL is used when > 0)")


class LaunchSpec(StrictConfig):
    """Everything a backend needs to run one training job."""

    name: str = Field(description="deterministic DNS-1123 name (from pipeline run and task), max 53 chars")
    trainer_config: dict[str, Any] = Field(description="TrainerConfig as a JSON-able dict")
    data_uri: str = Field(min_length=1, description="training set (Parquet) URI")
    output_uri: str = Field(min_length=1, description="folder the trainer writes metrics, checkpoints, model to")
    world_size: int = Field(2, ge=1, le=256, description="total processes (local ranks or replicas)")
    image: str = Field("", description="container image for cluster backends")
    resources: Resources = Field(default_factory=Resources)
    timeout_s: int = Field(3600, ge=10, le=7 * 86400, description="deadline for the whole job")

    @field_validator("name")
    @classmethod
    def _dns(cls, v: str) -> str:
        if not DNS1123.match(v):
            raise ValueError("must be a DNS-1123 label of at most 53 characters (lowercase, digits, '-')")
        return v


class JobPhase(StrEnum):
    """Lifecycle of a launched job."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobPhase.SUCCEEDED, JobPhase.FAILED, JobPhase.CANCELLED)


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a job's state."""

    phase: JobPhase
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class LaunchError(RuntimeError):
    """A launched job failed; the message says why and where its logs are."""


class RunningJob(ABC):
    """Handle on a launched job."""

    name: str

    @abstractmethod
    def status(self) -> JobStatus:
        """Current state (never blocks long)."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop the job and release what it holds; safe to call twice."""

    @abstractmethod
    def logs(self) -> str:
        """Logs collected so far (all ranks / pods), for the step's log artifact."""


class TrainingBackend(ABC):
    """Starts training jobs on one platform. Register implementations with
    ``components._core.backends.register("training", Backend.X)``."""

    @abstractmethod
    def start(self, spec: LaunchSpec) -> RunningJob:
        """Start ``spec`` (or adopt the job already running under ``spec.name``) and return its handle."""
