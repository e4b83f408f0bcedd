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
    from components.tuning.step import tune_step

    out = tune_step(training_set.path, data_uri=training_set.uri, output_dir=run.path, trials_uri=trials.path,
                    history_uri=history.path, spec=tuning_spec, trainer_config=trainer_config, launch=launch,
                    tune=tune_config, run_id=run_id, task=task)
    for key, value in out.metric_values().items():
        metrics.log_metric(key, value)
    run.metadata.update(out.run_metadata())
    return out.best_trainer_config, out.best.value
