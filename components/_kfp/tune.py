"""KFP wrapper of the tuning component."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from components._core.images import image


@dsl.component(base_image=image("torch"), install_kfp_package=False)
def tune(
    training_set: Input[Dataset],
    trials: Output[Dataset],
    history: Output[HTML],
    run: Output[Artifact],
    metrics: Output[Metrics],
    tuning_spec: str,
    trainer_config: str,
    launch: str = "{}",
    tune_config: str = "{}",
    run_id: str = "",
    task: str = "tune",
) -> NamedTuple("TuneOutputs", best_trainer_config=dict, best_value=float):  # type: ignore[valid-type]
    """Katib-style hyperparameter tuning (Optuna in the step, or a Katib Experiment); trials run through the
    training launch backend. Returns the best trainer config for the training step."""
    import json
    import shutil

    from components.tuning.step import tune_step

    out = tune_step(training_set.path, output_dir=run.path, spec=tuning_spec, trainer_config=json.loads(trainer_config),
                    launch=launch, tune=tune_config, run_id=run_id, task=task)
    for name, target in (("trials.parquet", trials.path), ("optimization_history.html", history.path)):
        shutil.copyfile(f"{run.path}/{name}", target)
    for key, value in out.metrics.items():
        metrics.log_metric(key, float(value))
    run.metadata.update({"best_value": out.best.value, "best_trial": out.best.trial_name})
    return out.best_trainer_config, out.best.value
