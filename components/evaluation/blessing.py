"""The blessing: the gate's decision as one JSON document (decision, reasons, every check, thresholds, both
models' metrics, the bootstrap interval, the held-out rows, both models' lineage)."""

from __future__ import annotations

from typing import Any

from components.evaluation.config import LOWER_IS_BETTER
from components.evaluation.evaluate import Evaluation
from components.evaluation.gate import RULE

HELDOUT = ("the candidate's test split: components.training.data.split_indices over the training set's labels "
           "with the seed, val_fraction and test_fraction of the candidate's model card (the trainer's own split); "
           "the champion is scored on the same rows")
BINNING = ("expected calibration error over {bins} equal-width bins of P(label = 1): [0, 1/{bins}), ..., "
           "[1 - 1/{bins}, 1]; sum over bins of (rows in bin / rows) * |positive rate - mean probability|")


def comparison(ev: Evaluation) -> dict[str, Any] | None:
    """The comparison with the champion, or None on a first deployment."""
    if ev.interval is None or ev.champion_metrics is None:
        return None
    c = ev.config.comparison
    return {**c.model_dump(mode="json"), "higher_is_better": c.metric not in LOWER_IS_BETTER,
            "candidate": ev.candidate_metrics[c.metric], "champion": ev.champion_metrics[c.metric],
            "difference": ev.interval.estimate, "ci_low": ev.interval.low, "ci_high": ev.interval.high,
            "bootstrap": "paired (same resampled rows for both models), stratified by class, percentile interval"}


def blessing_document(ev: Evaluation) -> dict[str, Any]:
    """The blessing artifact's JSON content."""
    held = ev.heldout
    return {
        "blessed": ev.blessed,
        "decision": "blessed" if ev.blessed else "not blessed",
        "reasons": ev.decision.reasons,
        "checks": [c.to_dict() for c in ev.decision.checks],
        "rule": RULE,
        "thresholds": ev.config.thresholds.model_dump(mode="json"),
        "comparison": comparison(ev),
        "heldout": {"description": HELDOUT, **held.split, "positives": held.positives,
                    "rows_sha256": held.digest()},
        "candidate": {"metrics": ev.candidate_metrics, "lineage": ev.candidate.lineage()},
        "champion": None if ev.champion is None else {"metrics": ev.champion_metrics,
                                                      "lineage": ev.champion.lineage()},
        "calibration": {"binning": BINNING.format(bins=ev.config.calibration_bins), "bins": ev.calibration},
        "confusion_matrix": {"rows": "true class 0, 1", "columns": "predicted class 0, 1",
                             "decision_threshold": ev.threshold, "matrix": ev.confusion},
        "slices": None if ev.slices is None else ev.slices.to_dict(),
        "notes": ev.notes,
        "config": ev.config.model_dump(mode="json"),
    }
