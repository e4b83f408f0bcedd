"""The monitoring pipeline: a new batch → ingest → validate against the watched model's contract → drift against
its reference → (drifted only) the model's training set plus the batch → tune → train → gate against the model
serving now → (blessed only) canary rollout.

The watched model is the one serving now at ``deploy_config``'s target unless ``model_uri`` names one. Every
parameter has a default that runs on one machine after ``catalog run training``: the default batch comes after
the training window and is unshifted (no retrain); add ``&shift=1.5`` to ``current_uri`` for a drifted one.
Ingest, validation and the drift check are cacheable on ``data_version`` (with the same model); the rest never.

No ``from __future__ import annotations`` here: KFP reads the real annotations of the pipeline signature.
"""

from kfp import dsl

from components._kfp import check_drift, extend_training_set, ingest, validate_data, watched_model
from pipelines import defaults
from pipelines.stages import retrain_and_roll_out
from pipelines.targets import Target, configure

NAME = "monitoring"
LATER_BATCH = "demo://events?rows=3000&bad_share=0.02&seed=11&start=2026-03-02"  # after the 60-day training window


def make_pipeline(target: Target = Target.LOCAL) -> dsl.graph_component.GraphComponent:
    """Build the monitoring pipeline for ``target``."""

    @dsl.pipeline(name=NAME, description="Check a new batch against the serving model's contract and reference; "
                                        "when it drifted, retrain on the data including it, gate against the "
                                        "serving champion and roll the new model out as a canary.")
    def monitoring(
        current_uri: str = LATER_BATCH,
        data_version: str = "batch-1",
        model_uri: str = "",
        ingest_config: str = "{}",
        max_quarantine_share: float = 0.05,
        drift_config: str = "{}",
        tuning_spec: str = defaults.TUNING_SPEC,
        trainer_config: str = defaults.TRAINER_CONFIG,
        launch: str = defaults.LAUNCH,
        tune_config: str = defaults.TUNE,
        evaluation_config: str = "{}",
        deploy_config: str = "{}",
    ) -> None:
        watched = configure(watched_model(config=deploy_config, model_uri=model_uri), target,
                            display_name="watched-model", cache=False)
        model = dsl.importer(artifact_uri=watched.outputs["model_uri"], artifact_class=dsl.Model, reimport=False)
        model.set_display_name("import-model")
        raw = configure(ingest(source_uri=current_uri, config=ingest_config, data_version=data_version),
                        target, display_name="ingest", memory="4G")
        checked = configure(
            validate_data(data=raw.outputs["dataset"], contract=watched.outputs["contract"],
                          max_quarantine_share=max_quarantine_share),
            target, display_name="validate",
        )
        drift = configure(check_drift(model=model.output, current=checked.outputs["valid"], config=drift_config),
                          target, display_name="drift", memory="4G")
        with dsl.If(drift.outputs["Output"] == True, name="drifted"):  # noqa: E712  (kfp compares the output)
            extended = configure(extend_training_set(model=model.output, batch=checked.outputs["valid"]),
                                 target, display_name="extend-training-set", cache=False, memory="4G")
            retrain_and_roll_out(
                training_set=extended.outputs["training_set"], validation=checked.outputs["stats"], target=target,
                data_version=data_version, tuning_spec=tuning_spec, trainer_config=trainer_config, launch=launch,
                tune_config=tune_config, evaluation_config=evaluation_config, deploy_config=deploy_config,
            )

    return monitoring
