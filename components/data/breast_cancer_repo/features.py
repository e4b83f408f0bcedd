"""Feast definitions for the breast_cancer event table: one entity (patient), one view of the 30 measurements."""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64

from components.data.contracts import BREAST_CANCER_FEATURES

patient = Entity(name="patient", join_keys=["entity_id"], value_type=ValueType.INT64, description="a patient")

# The path is supplied at apply time (the data lives in the pipeline's artifacts).
events = FileSource(name="events", path="data/events.parquet", timestamp_field="event_timestamp",
                    description="validated breast_cancer events")

measurements = FeatureView(
    name="measurements",
    entities=[patient],
    ttl=timedelta(days=3650),
    source=events,
    schema=[Field(name=name, dtype=Float64) for name in BREAST_CANCER_FEATURES],
    description="the 30 cell-nucleus measurements of a biopsy",
)

training = FeatureService(name="training", features=[measurements], description="the model's inputs")
