"""The evaluation step the KFP wrapper calls: config from JSON, the training set read, the evaluation run, the
blessing (JSON) and the report (Markdown) written, and a result whose ``to_metadata()`` / ``metrics()`` /
``confusion_matrix()`` / ``roc_curve()`` the wrapper copies onto its outputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components._core.artifacts import read_table, write_json, write_text
from components._core.metrics import numeric
from components.evaluation.blessing import blessing_document
from components.evaluation.config import EvaluationConfig
from components.evaluation.evaluate import Evaluation, evaluate
from components.evaluation.report import render

CATEGORIES = ["0", "1"]  # confusion matrix classes: the label's values


@dataclass(frozen=True)
class EvaluationResult:
    """What the step produced, in the shapes the KFP outputs take."""

    evaluation: Evaluation
    blessing: dict[str, Any]

    @property
    def blessed(self) -> bool:
        return self.evaluation.blessed

    def metrics(self) -> dict[str, float]:
        """Candidate metrics, the champion's as ``champion_<metric>``, the compared difference and its interval,
        the held-out row count and ``blessed`` as 1.0 / 0.0 (KFP ``Metrics`` take numbers only)."""
        ev = self.evaluation
        values: dict[str, Any] = {**ev.candidate_metrics, "heldout_rows": len(ev.heldout.y),
                                  "blessed": 1.0 if ev.blessed else 0.0}
        if ev.champion_metrics is not None and ev.interval is not None:
            metric = ev.config.comparison.metric
            values |= {f"champion_{k}": v for k, v in ev.champion_metrics.items()}
            values |= {f"{metric}_difference": ev.interval.estimate, f"{metric}_difference_low": ev.interval.low,
                       f"{metric}_difference_high": ev.interval.high}
        return numeric(values)

    def to_metadata(self) -> dict[str, Any]:
        """Flat metadata of the blessing artifact."""
        comparison = self.blessing["comparison"] or {}
        return {"blessed": self.blessed, "decision": self.blessing["decision"],
                "reasons": "; ".join(self.blessing["reasons"]),
                "candidate_uri": self.evaluation.candidate.uri,
                "champion_uri": self.evaluation.champion.uri if self.evaluation.champion else "",
                "heldout_rows": len(self.evaluation.heldout.y), "heldout_rows_sha256": self.evaluation.heldout.digest(),
                **{f"comparison_{k}": comparison.get(k) for k in ("metric", "difference", "ci_low", "ci_high")
                   if comparison}}

    def confusion_matrix(self) -> tuple[list[str], list[list[int]]]:
        """(categories, matrix) for ``ClassificationMetrics.log_confusion_matrix``; rows are the true class."""
        return CATEGORIES, self.evaluation.confusion

    def roc_curve(self) -> tuple[list[float], list[float], list[float]]:
        """(fpr, tpr, thresholds) for ``ClassificationMetrics.log_roc_curve``, at most ``roc_points`` points."""
        c = self.evaluation.curve
        return c.fpr, c.tpr, c.thresholds


def evaluate_step(model_uri: str, training_set_uri: str, *, report_uri: str, blessing_uri: str,
                  config: str | dict[str, Any] = "{}", champion_uri: str = "") -> EvaluationResult:
    """Evaluate the model at ``model_uri`` on its held-out split of the training set at ``training_set_uri``,
    against the champion at ``champion_uri`` ("" on a first deployment); write the blessing and the report.
    A candidate that is not blessed is a result, not an error; a bad config, an unreadable training set or a
    champion that cannot be loaded or scored on these rows raise, naming the problem."""
    cfg = EvaluationConfig.parse(config)
    evaluation = evaluate(read_table(training_set_uri), model_uri, champion_uri.strip() or None, cfg)
    doc = blessing_document(evaluation)
    write_json(doc, blessing_uri)
    write_text(render(doc), report_uri)
    return EvaluationResult(evaluation, doc)
