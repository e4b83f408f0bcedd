"""The training step: parse the launch config, pick the backend, run the trainer through the one launch path,
and lay out the results as artifacts (the model folder, and a run folder with metrics, checkpoints and logs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components._core.artifacts import filesystem, read_json, read_table
from components._core.k8s_meta import deterministic_name
from components._core.metrics import numeric
from components._core.waiting import Clock
from components.drift.bundle import write_bundle
from components.training.config import TrainerConfig
from components.training.launch import (
    CARD_FILE,
    MODEL_DIR,
    LaunchConfig,
    make_backend,
    output_file,
    read_final_metrics,
    run,
)
from components.training.launch import launch_spec as make_launch_spec


@dataclass(frozen=True)
class TrainOutcome:
    """What the training step produced."""

    name: str
    attempt: int
    adopted: bool
    metrics: dict[str, Any]
    model_card: dict[str, Any]

    def metric_values(self) -> dict[str, float]:
        """The numeric final metrics, for the KFP ``Metrics`` artifact."""
        return numeric(self.metrics)

    def model_metadata(self) -> dict[str, Any]:
        """Metadata of the ``Model`` artifact."""
        return {"framework": "pytorch", "format": "safetensors", "job": self.name, "attempt": self.attempt,
                "features": len(self.model_card.get("features", [])), "test_auc": self.metrics.get("test_auc")}


def copy_tree(src: str, dst: str) -> None:
    """Copy a folder between any two fsspec locations (local, gs://, s3://)."""
    sfs, spath = filesystem(src)
    dfs, dpath = filesystem(dst)
    for path in sfs.find(spath):
        rel = path[len(spath.rstrip("/")) + 1:]
        dfs.makedirs(f"{dpath}/{rel}".rsplit("/", 1)[0], exist_ok=True)
        with sfs.open(path, "rb") as fi, dfs.open(f"{dpath}/{rel}", "wb") as fo:
            fo.write(fi.read())


def train_step(data_path: str, *, model_dir: str, run_dir: str, trainer_config: dict[str, Any] | str,
               launch: LaunchConfig | dict[str, Any] | str, run_id: str, task: str, data_uri: str = "",
               data_version: str = "", contract: dict[str, Any] | None = None,
               clock: Clock | None = None) -> TrainOutcome:
    """Train on the training set at ``data_path`` (the step's own path; cluster jobs read the artifact's
    ``data_uri``); the model (safetensors + model card) lands in ``model_dir``, the run's metrics,
    checkpoints and logs (with the attempt history) in ``run_dir``. The job name is deterministic: a retried step
    adopts its running or succeeded job, and starts a new attempt when the earlier one failed. The model carries
    its monitoring bundle (``components.drift.bundle``: a reference sample with the model's predictions, the
    column roles and ``contract``, the validation contract its data passed)."""
    cfg = LaunchConfig.parse(launch)
    trainer = TrainerConfig.parse(trainer_config).model_dump(mode="json")
    name = deterministic_name(run_id, task, prefix="train")
    spec = make_launch_spec(cfg, name=name, trainer_config=trainer, data_path=data_path, data_uri=data_uri,
                            local_output=run_dir, data_version=data_version)
    backend = make_backend(cfg, run_id=run_id, task=task, log_dir=f"{run_dir}/launcher", clock=clock)
    launched = run(spec, backend, logs_uri=f"{run_dir}/logs.txt", clock=clock)
    if spec.output_uri != run_dir:  # cluster job: bring its outputs into the artifacts
        copy_tree(spec.output_uri, run_dir)
    copy_tree(output_file(run_dir, MODEL_DIR), model_dir)
    write_bundle(model_dir, read_table(data_path), contract=contract)
    return TrainOutcome(name=launched.job.name, attempt=launched.job.attempt, adopted=launched.adopted,
                        metrics=read_final_metrics(run_dir), model_card=read_json(output_file(model_dir, CARD_FILE)))

