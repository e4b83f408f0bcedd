"""Feast definitions of the demo repository: one entity, one file source, two feature views with TTLs and the
feature service the demo model trains on."""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.data_format import ParquetFormat
from feast.types import Float64, Int64, String

entity = Entity(name="entity", join_keys=["entity_id"], value_type=ValueType.INT64,
                description="a customer of the demo shop")

# The path is supplied at apply time (the data lives in the pipeline's artifacts).
events = FileSource(
    name="events",
    path="data/events.parquet",
    file_format=ParquetFormat(),  # explicit: artifact paths carry no .parquet suffix
    timestamp_field="event_timestamp",
    description="validated demo events",
)

activity = FeatureView(
    name="activity",
    entities=[entity],
    ttl=timedelta(days=14),
    source=events,
    schema=[
        Field(name="amount", dtype=Float64),
        Field(name="n_items", dtype=Int64),
        Field(name="session_minutes", dtype=Float64),
    ],
    description="the entity's latest basket, stale after two weeks",
)

profile = FeatureView(
    name="profile",
    entities=[entity],
    ttl=timedelta(days=90),
    source=events,
    schema=[
        Field(name="account_age_days", dtype=Int64),
        Field(name="country", dtype=String),
        Field(name="channel", dtype=String),
        Field(name="device", dtype=String),
    ],
    description="account age and the context (country, channel, device) of the latest event",
)

training = FeatureService(name="training", features=[activity, profile], description="the demo model's inputs")
