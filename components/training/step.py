"""The training step: pick a launch backend from config, run the trainer through it, and lay out the results
as artifacts (the model folder, and a run folder with metrics, checkpoints and logs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, model_validator

from components._core.artifacts import filesystem, is_local, read_json
from components._core.backends import Backend, resolve
from components._core.config import StrictConfig
from components._core.images import image
from components._core.k8s_meta import deterministic_name
from components.training import local as _local  # noqa: F401  (registers Backend.LOCAL)
from components.training.config import TrainerConfig
from components.training.kubeflow import KubeflowOptions  # registers Backend.KUBEFLOW
from components.training.launch import LaunchSpec, Resources, TrainingBackend
from components.training.run import run_training
from components.training.vertex import VertexOptions  # registers Backend.VERTEX


class VertexProject(StrictConfig):
    """Where Vertex CustomJobs run (credentials come from the environment, never from parameters)."""

    project: str = Field(min_length=1, description="Google Cloud project")
    location: str = Field("us-central1", min_length=1, description="Vertex AI region")
    staging_bucket: str = Field(pattern=r"^gs://", description="gs:// bucket for CustomJob staging")
    service_account: str | None = Field(None, description="service account the jobs run as")


class LaunchConfig(StrictConfig):
    """How training (and each tuning trial) is launched; ``backend`` picks the platform."""

    backend: Backend = Field(Backend.LOCAL, description="local processes, a PyTorchJob, or a Vertex CustomJob")
    world_size: int = Field(2, ge=1, le=256, description="processes: local ranks, or master + workers")
    image: str = Field(default_factory=lambda: image("torch"), description="trainer image for cluster backends")
    resources: Resources = Field(default_factory=Resources, description="per-replica resources")
    timeout_s: int = Field(3600, ge=10, le=7 * 86400, description="deadline for one training job")
    output_root: str = Field("", description="shared storage (gs:// or s3://) for cluster jobs' outputs")
    kubeflow: KubeflowOptions = Field(default_factory=KubeflowOptions, description="PyTorchJob options")
    vertex: VertexProject | None = Field(None, description="Vertex project; required for backend=vertex")
    vertex_options: VertexOptions = Field(default_factory=VertexOptions, description="CustomJob options")

    @model_validator(mode="after")
    def _cluster_needs_shared_storage(self) -> LaunchConfig:
        if self.backend != Backend.LOCAL and (not self.output_root or is_local(self.output_root)):
            raise ValueError(f"output_root must be shared storage (gs:// or s3://) for backend {self.backend}")
        if self.backend == Backend.VERTEX and self.vertex is None:
            raise ValueError("vertex (project, location, staging_bucket) is required for backend=vertex")
        return self


def make_backend(cfg: LaunchConfig, *, run_id: str, task: str, log_dir: str | None = None) -> TrainingBackend:
    """The configured backend, built through the backend registry (clients are created lazily)."""
    cls: Any = resolve("training", cfg.backend)
    if cfg.backend == Backend.LOCAL:
        return cls(log_dir=log_dir)
    if cfg.backend == Backend.KUBEFLOW:
        return cls(cfg.kubeflow.model_copy(update={"run_id": run_id, "task": task}))
    from components.training.vertex import AiplatformJobClient

    assert cfg.vertex is not None
    client = AiplatformJobClient(cfg.vertex.project, cfg.vertex.location, cfg.vertex.staging_bucket,
                                 service_account=cfg.vertex.service_account)
    return cls(cfg.vertex_options, client=client)


def launch_spec(cfg: LaunchConfig, *, name: str, trainer_config: dict[str, Any], data_uri: str,
                local_output: str) -> LaunchSpec:
    """A ``LaunchSpec`` whose output goes to ``local_output`` (local) or ``output_root/name`` (cluster)."""
    output = local_output if cfg.backend == Backend.LOCAL else f"{cfg.output_root.rstrip('/')}/{name}"
    # None fields are left out: they equal their defaults, and KFP dict parameters cannot carry null.
    tc = TrainerConfig.parse(trainer_config).model_dump(mode="json", exclude_none=True)
    return LaunchSpec(name=name, trainer_config=tc,
                      data_uri=data_uri, output_uri=output, world_size=cfg.world_size, image=cfg.image,
                      resources=cfg.resources, timeout_s=cfg.timeout_s)


@dataclass(frozen=True)
class TrainOutcome:
    """What the training step produced."""

    name: str
    metrics: dict[str, Any]
    model_card: dict[str, Any]


def copy_tree(src: str, dst: str) -> None:
    """Copy a folder between any two fsspec locations (local, gs://, s3://)."""
    sfs, spath = filesystem(src)
    dfs, dpath = filesystem(dst)
    for path in sfs.find(spath):
        rel = path[len(spath.rstrip("/")) + 1:]
        dfs.makedirs(f"{dpath}/{rel}".rsplit("/", 1)[0], exist_ok=True)
        with sfs.open(path, "rb") as fi, dfs.open(f"{dpath}/{rel}", "wb") as fo:
            fo.write(fi.read())


def train_step(data_uri: str, *, model_dir: str, run_dir: str, trainer_config: dict[str, Any] | str,
               launch: LaunchConfig | dict[str, Any] | str, run_id: str, task: str,
               backend: TrainingBackend | None = None) -> TrainOutcome:
    """Train on ``data_uri``; the model (safetensors + model card) lands in ``model_dir``, the run's metrics,
    checkpoints and logs in ``run_dir``. The job name is deterministic, so a retried step adopts its job."""
    cfg = LaunchConfig.parse(launch)
    name = deterministic_name(run_id, task, prefix="train")
    spec = launch_spec(cfg, name=name, trainer_config=TrainerConfig.parse(trainer_config).model_dump(),
                       data_uri=data_uri, local_output=run_dir)
    backend = backend or make_backend(cfg, run_id=run_id, task=task, log_dir=f"{run_dir}/launcher")
    metrics = run_training(spec, backend, logs_uri=f"{run_dir}/logs.txt")
    if spec.output_uri != run_dir:  # cluster job: bring its outputs into the artifacts
        copy_tree(spec.output_uri, run_dir)
    copy_tree(f"{run_dir}/model", model_dir)
    return TrainOutcome(name=name, metrics=metrics, model_card=read_json(f"{model_dir}/model_card.json"))
