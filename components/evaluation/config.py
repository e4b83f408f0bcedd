"""The evaluation step's configuration: absolute thresholds, the comparison with the champion, slicing, and how
probabilities become decisions (threshold), calibration bins and ROC points."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from components._core.config import StrictConfig

Metric = Literal["auc", "accuracy", "precision", "recall", "f1", "log_loss", "calibration_error"]
LOWER_IS_BETTER: frozenset[str] = frozenset({"log_loss", "calibration_error"})


class Thresholds(StrictConfig):
    """Absolute limits on the candidate's held-out metrics; ``None`` turns a limit off."""

    min_auc: float | None = Field(0.6, ge=0.0, le=1.0, description="smallest ROC AUC blessed")
    min_accuracy: float | None = Field(None, ge=0.0, le=1.0, description="smallest accuracy blessed")
    min_precision: float | None = Field(None, ge=0.0, le=1.0, description="smallest precision blessed")
    min_recall: float | None = Field(None, ge=0.0, le=1.0, description="smallest recall blessed")
    min_f1: float | None = Field(None, ge=0.0, le=1.0, description="smallest F1 blessed")
    max_log_loss: float | None = Field(
        0.693, gt=0.0, le=100.0, description="largest log loss blessed (0.693 = ln 2: always predicting 0.5)")
    max_calibration_error: float | None = Field(0.15, ge=0.0, le=1.0,
                                                description="largest expected calibration error blessed")
    min_rows: int = Field(30, ge=1, le=10_000_000, description="fewest held-out rows an evaluation may rest on")

    def limits(self) -> dict[str, tuple[str, float]]:
        """Metric -> (``min`` or ``max``, limit) for every limit that is on."""
        out: dict[str, tuple[str, float]] = {}
        for name, value in self.model_dump(exclude={"min_rows"}).items():
            if value is not None:
                kind, metric = name.split("_", 1)
                out[metric] = (kind, float(value))
        return out


class Comparison(StrictConfig):
    """How the candidate is compared with the champion: a paired, class-stratified bootstrap of the difference
    (candidate - champion) of ``metric`` on the same held-out rows."""

    metric: Metric = Field("auc", description="metric compared (log_loss and calibration_error: lower is better)")
    tolerance: float = Field(0.01, ge=0.0, le=1.0,
                             description="how much worse than the champion the candidate may be")
    confidence: float = Field(0.95, ge=0.5, le=0.999, description="two-sided confidence of the interval")
    resamples: int = Field(1000, ge=100, le=100_000, description="bootstrap resamples")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="seed of the bootstrap resamples")


class Slicing(StrictConfig):
    """Per-slice metrics over the values of one categorical column of the held-out rows."""

    column: str | None = Field(None, min_length=1, max_length=256, description="column to slice by; None = off")
    min_rows: int = Field(30, ge=1, le=10_000_000, description="slices with fewer rows are skipped (and listed)")
    max_slices: int = Field(100, ge=1, le=10_000, description="more distinct values: the column is not categorical")


class EvaluationConfig(StrictConfig):
    """Everything the evaluation step needs besides the models and the training set."""

    thresholds: Thresholds = Field(default_factory=Thresholds, description="absolute limits")
    comparison: Comparison = Field(default_factory=Comparison, description="comparison with the champion")
    slices: Slicing = Field(default_factory=Slicing, description="per-slice metrics")
    decision_threshold: float | None = Field(
        None, gt=0.0, lt=1.0,
        description="probability at or above which a row is predicted positive (both models); None: the "
                    "candidate card's threshold, 0.5 when it has none")
    calibration_bins: int = Field(10, ge=2, le=100, description="equal-width probability bins of the ECE")
    roc_points: int = Field(200, ge=3, le=1000, description="most points of the ROC curve logged for the KFP UI")
