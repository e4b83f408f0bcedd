"""Where a model is deployed: one config per serving backend (the local KServe model servers, a KServe
InferenceService, a Vertex AI endpoint), the rollout settings shared by all, and what "the model serving now" is.

``DeployConfig`` is the deploy step's config; ``make_serving`` builds the backend from the backend table (imported
on use), and ``serving_now`` answers which model takes the traffic (the champion the gate compares with).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from components._core.backends import Backend, load_backend
from components._core.config import StrictConfig
from components.training.launch import WaitOptions

SERVING_HOME_VAR = "CATALOG_SERVING_HOME"
DEFAULT_SERVICE = "catalog-model"
NAME = r"^[a-z]([-a-z0-9]{0,40}[a-z0-9])?$"


def serving_home() -> Path:
    """Where local deployments keep their state: ``$CATALOG_SERVING_HOME``, else ``~/.cache/kfp-catalog/serving``."""
    return Path(os.environ.get(SERVING_HOME_VAR) or Path.home() / ".cache" / "kfp-catalog" / "serving")


class SmokeTest(StrictConfig):
    """Real inference requests sent to the candidate before it takes more traffic."""

    requests: int = Field(50, ge=1, le=10_000, description="one-row requests sent to the candidate")
    max_error_rate: float = Field(0.0, ge=0.0, le=1.0, description="share of requests that may fail")
    max_p99_ms: float = Field(500.0, gt=0, le=60_000, description="largest acceptable 99th percentile latency")


class Comparison(StrictConfig):
    """Candidate and stable model scored on the same labelled sample through their endpoints."""

    rows: int = Field(400, ge=10, le=1_000_000, description="labelled rows scored by both models")
    metric: Literal["auc", "accuracy", "log_loss"] = Field("auc", description="metric compared")
    tolerance: float = Field(0.02, ge=0.0, le=1.0, description="how much worse the candidate may score")


class LocalTarget(StrictConfig):
    """Local KServe model servers on loopback behind one traffic-splitting endpoint (kept after the run)."""

    home: str = Field("", description=f"state folder; empty: ${SERVING_HOME_VAR} or ~/.cache/kfp-catalog/serving")
    port: int = Field(0, ge=0, le=65535, description="endpoint port on 127.0.0.1; 0: a free port, kept once chosen")

    def root(self) -> Path:
        """The state folder of all local services."""
        return Path(self.home) if self.home else serving_home()


class KServeTarget(StrictConfig):
    """A KServe InferenceService running the catalog's ServingRuntime."""

    namespace: str = Field("kubeflow", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    mode: Literal["serverless", "raw"] = Field(
        "serverless", description="serverless (Knative: canaryTrafficPercent) or raw (Standard: spec.canary)")
    runtime: str = Field("kfp-catalog-predictor", description="ServingRuntime the predictor runs on")
    model_format: str = Field("kfp-catalog-tabular", description="model format the runtime declares")
    service_account: str | None = Field(None, description="service account of the predictor pods (storage access)")
    cpu: str = Field("1", description="CPU request and limit of the predictor")
    memory: str = Field("2Gi", description="memory request and limit of the predictor")
    min_replicas: int = Field(1, ge=0, le=100)
    max_replicas: int = Field(3, ge=1, le=1000)
    run_as_user: int = Field(10001, ge=1)
    wait: WaitOptions = Field(default_factory=lambda: WaitOptions(poll_interval_s=5.0, deadline_grace_s=0),
                              description="how readiness is waited for")


class VertexTarget(StrictConfig):
    """A Vertex AI endpoint with a traffic split (credentials from the environment)."""

    project: str = Field(min_length=1)
    location: str = Field("us-central1", min_length=1)
    endpoint: str = Field(min_length=1, description="endpoint id, or display name (created when missing)")
    machine_type: str = Field("n1-standard-2", min_length=1)
    min_replicas: int = Field(1, ge=1, le=100)
    max_replicas: int = Field(2, ge=1, le=1000)
    serving_image: str = Field("", description="serving container image; empty: the catalog's serving image")
    service_account: str | None = Field(None)
    wait: WaitOptions = Field(default_factory=lambda: WaitOptions(poll_interval_s=15.0, deadline_grace_s=0),
                              description="how readiness is waited for")


class DeployConfig(StrictConfig):
    """Deploy a blessed model as a canary and promote or roll back automatically."""

    backend: Backend = Field(Backend.LOCAL, description="local model servers, KServe (kubeflow) or Vertex")
    service: str = Field(DEFAULT_SERVICE, pattern=NAME, description="name of the served model / service")
    canary_percent: int = Field(20, ge=1, le=99, description="share of live traffic the candidate gets first")
    readiness_timeout_s: int = Field(600, ge=1, le=86_400, description="deadline for the candidate to be ready")
    smoke: SmokeTest = Field(default_factory=SmokeTest)
    compare: Comparison = Field(default_factory=Comparison)
    traffic_probe: int = Field(200, ge=0, le=100_000,
                               description="requests sent through the endpoint to observe the split (local, vertex)")
    local: LocalTarget = Field(default_factory=LocalTarget)
    kserve: KServeTarget = Field(default_factory=KServeTarget)
    vertex: VertexTarget | None = Field(None, description="required for backend=vertex")

    @model_validator(mode="after")
    def _vertex_needs_its_target(self) -> Self:
        if self.backend == Backend.VERTEX and self.vertex is None:
            raise ValueError("vertex (project, location, endpoint) is required for backend=vertex")
        return self


@dataclass(frozen=True)
class Served:
    """A model as deployed: where its files are, its version (weights digest) and its model card lineage."""

    model_uri: str
    version: str
    lineage: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (rollout records, state files)."""
        return {"model_uri": self.model_uri, "version": self.version, "lineage": self.lineage}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Served:
        """Inverse of ``to_dict``."""
        return cls(str(data["model_uri"]), str(data["version"]), dict(data.get("lineage") or {}))


BACKENDS: dict[Backend, str] = {
    Backend.LOCAL: "components.serving.canary.local:LocalServing",
    Backend.KUBEFLOW: "components.serving.canary.kserve:KServeServing",
    Backend.VERTEX: "components.serving.canary.vertex:VertexServing",
}


def make_serving(cfg: DeployConfig, **clients: Any) -> Any:
    """The configured serving backend (a ``ServingBackend``), from the backend table; ``clients`` are passed on
    (tests inject fakes; by default each backend makes its own on first use)."""
    cls = load_backend(BACKENDS, cfg.backend, "serving")
    return cls.from_config(cfg, **clients)


def serving_now(cfg: DeployConfig | dict[str, Any] | str, **clients: Any) -> Served | None:
    """The model taking the service's traffic now (the champion), or None before the first deployment."""
    stable: Served | None = make_serving(DeployConfig.parse(cfg), **clients).stable()
    return stable


def champion_uri(config: DeployConfig | dict[str, Any] | str, **clients: Any) -> str:
    """The URI of the model serving now at the deployment target ('' before the first deployment): the gate's
    champion. Kept here, away from the deploy step's imports, so the lookup step starts quickly."""
    served = serving_now(config, **clients)
    return served.model_uri if served else ""
