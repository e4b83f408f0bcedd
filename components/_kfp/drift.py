"""KFP wrapper of the drift check component."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from components._core.images import image


@dsl.component(base_image=image("torch"), install_kfp_package=False)
def check_drift(
    model: Input[Model],
    current: Input[Dataset],
    report: Output[HTML],
    metrics: Output[Metrics],
    result: Output[Artifact],
    config: str = "{}",
) -> bool:
    """Check the ``current`` batch for drift against the monitoring bundle of ``model`` (its ``monitoring/``
    reference sample, column roles and predictions): per-column tests with Evidently's methods and thresholds over
    every row, prediction drift from the model's scores on the batch, and Evidently's HTML report on a stated
    sample. ``config``: JSON of drift_share, num_method / cat_method, per_column_method / per_column_threshold,
    threshold, max_rows, report_rows, seed, columns. Returns whether the batch drifted (drifted feature share >=
    drift_share); branch on it with ``dsl.If(task.outputs["Output"] == True)``."""
    from components.drift.step import drift_step

    out = drift_step(model.path, current.path, config=config, report_uri=report.path, result_uri=result.path)
    for key, value in out.metrics().items():
        metrics.log_metric(key, value)
    result.metadata.update(out.to_metadata())
    return out.drifted
