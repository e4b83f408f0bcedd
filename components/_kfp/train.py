"""KFP wrapper of the distributed training component."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components._core.images import image


@dsl.component(base_image=image("torch"), install_kfp_package=False)
def train(
    training_set: Input[Dataset],
    model: Output[Model],
    run: Output[Artifact],
    metrics: Output[Metrics],
    trainer_config: dict,
    launch: str = "{}",
    run_id: str = "",
    task: str = "train",
    data_version: str = "",
    validation: Input[Artifact] = None,
) -> float:
    """Train the tabular PyTorch model with DDP as local processes, a PyTorchJob or a Vertex CustomJob; writes a
    safetensors model with its model card and monitoring bundle (reference sample with predictions, column
    roles, and the contract from ``validation``, the validate step's ``stats``), and the run's metrics,
    checkpoints and logs. Returns the test AUC."""
    from components._core.artifacts import read_json
    from components.training.step import train_step

    contract = read_json(validation.path).get("contract") if validation is not None else None
    out = train_step(training_set.path, data_uri=training_set.uri, model_dir=model.path, run_dir=run.path,
                     trainer_config=trainer_config, launch=launch, run_id=run_id, task=task,
                     data_version=data_version, contract=contract)
    for key, value in out.metric_values().items():
        metrics.log_metric(key, value)
    model.metadata.update(out.model_metadata())
    return float(out.metrics["test_auc"])
