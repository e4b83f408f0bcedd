"""The training pipeline: ingest → validate (later stages extend this same pipeline).

No ``from __future__ import annotations`` here: KFP reads the real annotations of the pipeline signature.

Every parameter has a default that runs on one machine with embedded data.
"""


from kfp import dsl

from components._kfp import ingest, validate_data
from pipelines.targets import Target, configure

NAME = "training"


def make_pipeline(target: Target = Target.LOCAL) -> dsl.graph_component.GraphComponent:
    """Build the training pipeline for ``target`` (platform config differs; the graph does not)."""

    @dsl.pipeline(name=NAME, description="Ingest and validate event data, ready for features and training.")
    def training(
        source_uri: str = "demo://events?rows=5000&bad_share=0.02&seed=7",
        data_version: str = "v1",
        ingest_config: str = "{}",
        contract: str = "demo_events",
        max_quarantine_share: float = 0.05,
    ) -> None:
        raw = configure(
            ingest(source_uri=source_uri, config=ingest_config, data_version=data_version),
            target, display_name="ingest", memory="4G",
        )
        configure(
            validate_data(data=raw.outputs["dataset"], contract=contract,
                          max_quarantine_share=max_quarantine_share),
            target, display_name="validate",
        )

    return training
