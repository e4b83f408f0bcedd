"""KFP wrapper of the data validation component."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Output

from components._core.images import image


@dsl.component(base_image=image("base"), install_kfp_package=False)
def validate_data(
    data: Input[Dataset],
    valid: Output[Dataset],
    quarantine: Output[Dataset],
    stats: Output[Artifact],
    report: Output[Markdown],
    metrics: Output[Metrics],
    contract: str = "",
    max_quarantine_share: float = 0.05,
    config: str = "{}",
    reference: Input[Dataset] = None,
) -> NamedTuple("ValidationCounts", rows_valid=int, rows_quarantined=int):  # type: ignore[valid-type]
    """Check rows against a schema contract (a built-in name, inline JSON or a URI; empty infers it from
    ``reference``, or applies no row rules without one); invalid rows go to ``quarantine`` with a reason each;
    fails above the quarantine share. ``config``: JSON of further options (allow_empty, infer)."""
    from components.validation.step import validate_step

    summary = validate_step(
        data.path, valid_uri=valid.path, quarantine_uri=quarantine.path, stats_uri=stats.path,
        report_uri=report.path, contract=contract, max_quarantine_share=max_quarantine_share, config=config,
        reference_uri=reference.path if reference is not None else None,
    )
    for artifact in (valid, quarantine):
        artifact.metadata.update(summary.to_metadata())
    for key, value in summary.metrics().items():
        metrics.log_metric(key, value)
    return summary.rows_valid, summary.rows_quarantined  # KFP maps a tuple onto the NamedTuple's fields
