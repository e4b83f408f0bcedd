"""KFP wrappers of the Feast feature components: apply, materialize, training set, online check. Each calls its
step in ``components.features.step`` and copies the result's metadata and metrics onto the outputs."""

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
    """Register a Feast feature repository (catalog name, folder or URI) with data source ``source_name`` reading
    ``data`` (empty: the repository's own sources); its feature_store.yaml settings apply unless ``store_config``
    sets them. Fails naming the invalid object. Returns the registered feature views."""
    from components.features.step import apply_step

    result = apply_step(repo, data.path, feature_store.path, source_name, store_config)
    feature_store.metadata.update(result.to_metadata())
    return result.registered_views


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
    from components.features.step import materialize_step

    del data  # declared so the source file is present wherever this step runs
    result = materialize_step(feature_store.path, materialized.path, report.path, config)
    materialized.metadata.update(result.to_metadata())
    for key, value in result.metrics().items():
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
    from components.features.step import training_set_step

    del data  # declared so the source file is present wherever this step runs
    result = training_set_step(feature_store.path, labels.path, training_set.path, config)
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
    """Read online features back (full names, view__feature) for a sample of entities; records latency p50/p99 and
    coverage. Returns the coverage."""
    from components.features.step import online_check_step

    result = online_check_step(feature_store.path, entities.path, report.path, config)
    for key, value in result.metrics().items():
        metrics.log_metric(key, value)
    return result.coverage
