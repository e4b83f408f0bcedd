"""KFP wrappers of the Feast feature components: apply, materialize, training set, online check."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components._core.images import image


@dsl.component(base_image=image("base"), install_kfp_package=False)
def feature_apply(
    data: Input[Dataset],
    feature_store: Output[Artifact],
    repo: str = "demo",
    source_name: str = "events",
    store_config: str = "{}",
) -> str:
    """Register a Feast feature repository (catalog name, folder or URI) over ``data`` as source ``source_name``;
    fails naming the invalid object. Returns the registered feature views."""
    import json

    from components.features.apply import apply_repo

    cfg = {"store": json.loads(store_config or "{}"), "source_paths": {source_name: data.path}}
    result = apply_repo(repo, feature_store.path, cfg)
    feature_store.metadata.update(result.to_metadata())
    return ",".join(result.feature_views)


@dsl.component(base_image=image("base"), install_kfp_package=False)
def feature_materialize(
    feature_store: Input[Artifact],
    data: Input[Dataset],
    materialized: Output[Artifact],
    report: Output[Artifact],
    metrics: Output[Metrics],
    config: str = '{"mode": "incremental"}',
) -> int:
    """Load features into the online store for a window or incrementally, in batches, never replacing a newer
    online value with an older one. ``data`` is the source the store reads. Returns the rows written."""
    from components._core.metrics import numeric
    from components.features.steps import materialize_into

    del data  # declared so the source file is present wherever this step runs
    result = materialize_into(feature_store.path, materialized.path, report.path, config)
    materialized.metadata.update(result.to_metadata())
    for key, value in numeric(result.to_metadata()).items():
        metrics.log_metric(key, value)
    return result.rows


@dsl.component(base_image=image("base"), install_kfp_package=False)
def feature_training_set(
    feature_store: Input[Artifact],
    data: Input[Dataset],
    labels: Input[Dataset],
    training_set: Output[Dataset],
    config: str = '{"feature_service": "training"}',
) -> int:
    """Point-in-time correct features for every label row (entity key, event timestamp, labels) → Parquet; no
    future leakage, TTL honoured, missing features are explicit nulls. Returns the rows written."""
    from components.features.training_set import build_training_set

    del data  # declared so the source file is present wherever this step runs
    result = build_training_set(feature_store.path, labels.path, training_set.path, config)
    training_set.metadata.update(result.to_metadata())
    return result.rows


@dsl.component(base_image=image("base"), install_kfp_package=False)
def feature_online_check(
    feature_store: Input[Artifact],
    entities: Input[Dataset],
    report: Output[Artifact],
    metrics: Output[Metrics],
    config: str = "{}",
) -> float:
    """Read online features back for a sample of entities; records latency p50/p99 and coverage. Returns the
    coverage."""
    from components._core.metrics import numeric
    from components.features.online_check import online_check

    result = online_check(feature_store.path, entities.path, report.path, config)
    for key, value in numeric(result.to_metadata()).items():
        metrics.log_metric(key, value)
    return result.coverage
