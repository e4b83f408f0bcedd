"""The training pipeline: ingest → validate → feature apply → materialize → training set (+ online check) →
tune → train → evaluate and gate against the model serving now → (if blessed) canary rollout with automatic
promote or rollback.

No ``from __future__ import annotations`` here: KFP reads the real annotations of the pipeline signature.
Every parameter has a default that runs on one machine with embedded data.
"""

from kfp import dsl

from components._kfp import (
    feature_apply,
    feature_materialize,
    feature_online_check,
    feature_training_set,
    ingest,
    validate_data,
)
from pipelines import defaults
from pipelines.stages import retrain_and_roll_out
from pipelines.targets import Target, configure

NAME = "training"


def make_pipeline(target: Target = Target.LOCAL) -> dsl.graph_component.GraphComponent:
    """Build the training pipeline for ``target`` (platform config differs; the graph does not)."""

    @dsl.pipeline(name=NAME, description="Ingest, validate, build Feast features, tune and train a tabular "
                                        "PyTorch model, gate it against the serving champion and roll it out "
                                        "as a canary.")
    def training(
        source_uri: str = "demo://events?rows=5000&bad_share=0.02&seed=7",
        data_version: str = "v1",
        ingest_config: str = "{}",
        contract: str = "demo_events",
        max_quarantine_share: float = 0.05,
        feature_repo: str = "demo",
        feature_source_name: str = "events",
        feature_store_config: str = "{}",
        materialize_config: str = '{"mode": "incremental"}',
        training_set_config: str = '{"feature_service": "training"}',
        tuning_spec: str = defaults.TUNING_SPEC,
        trainer_config: str = defaults.TRAINER_CONFIG,
        launch: str = defaults.LAUNCH,
        tune_config: str = defaults.TUNE,
        evaluation_config: str = "{}",
        deploy_config: str = "{}",
    ) -> None:
        raw = configure(
            ingest(source_uri=source_uri, config=ingest_config, data_version=data_version),
            target, display_name="ingest", memory="4G",
        )
        checked = configure(
            validate_data(data=raw.outputs["dataset"], contract=contract,
                          max_quarantine_share=max_quarantine_share),
            target, display_name="validate",
        )
        valid = checked.outputs["valid"]
        store = configure(
            feature_apply(data=valid, repo=feature_repo, source_name=feature_source_name,
                          store_config=feature_store_config),
            target, display_name="feature-apply", cache=False, secrets=["features"],
        )
        loaded = configure(
            feature_materialize(feature_store=store.outputs["feature_store"], data=valid, config=materialize_config),
            target, display_name="materialize", cache=False, memory="4G", secrets=["features"],
        )
        features = configure(
            feature_training_set(feature_store=loaded.outputs["materialized"], data=valid, labels=valid,
                                 config=training_set_config),
            target, display_name="training-set", memory="4G", secrets=["features"],
        )
        configure(
            feature_online_check(feature_store=loaded.outputs["materialized"], entities=valid),
            target, display_name="online-check", cache=False, secrets=["features"],
        )
        retrain_and_roll_out(
            training_set=features.outputs["training_set"], validation=checked.outputs["stats"], target=target,
            data_version=data_version, tuning_spec=tuning_spec, trainer_config=trainer_config, launch=launch,
            tune_config=tune_config, evaluation_config=evaluation_config, deploy_config=deploy_config,
        )

    return training
