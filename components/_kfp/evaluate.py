"""KFP wrapper of the evaluation and gate component."""

from kfp import dsl
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from components._core.images import image


@dsl.component(base_image=image("torch"), install_kfp_package=False)
def evaluate(
    model: Input[Model],
    training_set: Input[Dataset],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[Markdown],
    blessing: Output[Artifact],
    config: str = "{}",
    champion_uri: str = "",
) -> bool:
    """Evaluate the trained model on its own held-out test split of the training set (AUC, accuracy, precision,
    recall, F1, log loss, calibration error, slices), compare it with the champion at ``champion_uri`` ("" on a
    first deployment) on the same rows with a paired bootstrap, and gate it. ``config``: JSON of thresholds,
    comparison (metric, tolerance, confidence, resamples), slices. Returns whether the model is blessed; branch
    on it with ``dsl.If(task.outputs["Output"] == True)`` (kfp.local cannot resolve a NamedTuple field there)."""
    from components.evaluation.step import evaluate_step

    result = evaluate_step(model.path, training_set.path, report_uri=report.path, blessing_uri=blessing.path,
                           config=config, champion_uri=champion_uri)
    for key, value in result.metrics().items():
        metrics.log_metric(key, value)
    classification.log_confusion_matrix(*result.confusion_matrix())
    classification.log_roc_curve(*result.roc_curve())
    blessing.metadata.update(result.to_metadata())
    return result.blessed
