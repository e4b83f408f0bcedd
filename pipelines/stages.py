"""Stages shared by pipelines (composition only): tune → train → evaluate and gate against the model serving now →
(blessed only) canary rollout. The training pipeline runs it on a fresh training set, the monitoring pipeline
on the extended one after drift."""

from kfp import dsl
from kfp.dsl.pipeline_channel import PipelineChannel

from components._kfp import deploy, evaluate, serving_champion, train, tune
from pipelines.targets import Target, configure


def retrain_and_roll_out(
    *,
    training_set: PipelineChannel,
    validation: PipelineChannel,
    target: Target,
    data_version: PipelineChannel | str,
    tuning_spec: PipelineChannel,
    trainer_config: PipelineChannel,
    launch: PipelineChannel,
    tune_config: PipelineChannel,
    evaluation_config: PipelineChannel,
    deploy_config: PipelineChannel,
) -> None:
    """Add the tasks to the pipeline being defined; ``validation`` is the validate step's ``stats`` (the contract
    the model then carries). Launch and deploy tasks are never cached."""
    tuned = configure(
        tune(training_set=training_set, tuning_spec=tuning_spec, trainer_config=trainer_config,
             launch=launch, tune_config=tune_config, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
             task=dsl.PIPELINE_TASK_NAME_PLACEHOLDER),
        target, display_name="tune", cache=False, timeout_s=6 * 3600, cpu="2", memory="4G", secrets=["tuning"],
    )
    trained = configure(
        train(training_set=training_set, trainer_config=tuned.outputs["best_trainer_config"],
              launch=launch, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, task=dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
              data_version=data_version, validation=validation),
        target, display_name="train", cache=False, timeout_s=6 * 3600, cpu="2", memory="4G",
    )
    champion = configure(serving_champion(config=deploy_config), target, display_name="champion", cache=False)
    gate = configure(
        evaluate(model=trained.outputs["model"], training_set=training_set, config=evaluation_config,
                 champion_uri=champion.output),
        target, display_name="evaluate", cache=False, memory="4G",
    )
    with dsl.If(gate.outputs["Output"] == True, name="blessed"):  # noqa: E712  (kfp compares the output, not Python)
        configure(
            deploy(model=trained.outputs["model"], training_set=training_set,
                   blessing=gate.outputs["blessing"], config=deploy_config,
                   run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, task=dsl.PIPELINE_TASK_NAME_PLACEHOLDER),
            target, display_name="deploy", cache=False, timeout_s=2 * 3600,
        )
