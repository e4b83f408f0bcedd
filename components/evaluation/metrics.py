"""Binary classification metrics of predicted probabilities, one numpy implementation used for the point values
and for every bootstrap resample (scikit-learn's functions cost ~2 ms a call, and importing scikit-learn ~2 s
in each step's process; tests check these against them).

AUC is the trainer's own (Mann-Whitney, ties averaged), so the evaluation's AUC is the trainer's ``test_auc``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from components.training.metrics import roc_auc

EPS = 1e-15  # probabilities are clipped to [EPS, 1 - EPS] in the log loss
NAMES = ("auc", "accuracy", "precision", "recall", "f1", "log_loss", "calibration_error")


def _counts(y: np.ndarray, p: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    """(tn, fp, fn, tp) with ``p >= threshold`` predicted positive."""
    pred, pos = p >= threshold, y > 0.5
    tp = int(np.sum(pred & pos))
    fp = int(np.sum(pred & ~pos))
    fn = int(np.sum(~pred & pos))
    return len(y) - tp - fp - fn, fp, fn, tp


def accuracy(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> float:
    """Share of rows whose predicted class is the label."""
    return float(np.mean((p >= threshold) == (y > 0.5)))


def precision(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> float:
    """tp / (tp + fp); 0 when nothing is predicted positive."""
    _, fp, _, tp = _counts(y, p, threshold)
    return tp / (tp + fp) if tp + fp else 0.0


def recall(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> float:
    """tp / (tp + fn); 0 when there are no positives."""
    _, _, fn, tp = _counts(y, p, threshold)
    return tp / (tp + fn) if tp + fn else 0.0


def f1(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> float:
    """2 tp / (2 tp + fp + fn); 0 when that is 0 / 0."""
    _, fp, fn, tp = _counts(y, p, threshold)
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary cross-entropy in nats, probabilities clipped to [1e-15, 1 - 1e-15]."""
    q = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(np.where(y > 0.5, np.log(q), np.log1p(-q))))


def bin_index(p: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bin of each probability: [0, 1/bins), ..., [(bins-1)/bins, 1] (the last bin holds 1.0)."""
    return np.minimum((p * bins).astype(np.int64), bins - 1)


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: sum over equal-width bins of (rows in bin / rows) * |mean label - mean p|."""
    b = bin_index(p, bins)
    gap = np.abs(np.bincount(b, weights=y, minlength=bins) - np.bincount(b, weights=p, minlength=bins))
    return float(gap.sum() / len(y))  # sum_b n_b/N * |sum(y_b)/n_b - sum(p_b)/n_b| with n_b cancelled


def metric_function(name: str, threshold: float, bins: int) -> Callable[[np.ndarray, np.ndarray], float]:
    """``f(y, p) -> value`` of a metric in ``NAMES`` with the decision threshold and calibration bins bound."""
    functions: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
        "auc": roc_auc,
        "accuracy": lambda y, p: accuracy(y, p, threshold),
        "precision": lambda y, p: precision(y, p, threshold),
        "recall": lambda y, p: recall(y, p, threshold),
        "f1": lambda y, p: f1(y, p, threshold),
        "log_loss": log_loss,
        "calibration_error": lambda y, p: calibration_error(y, p, bins),
    }
    if name not in functions:
        raise ValueError(f"unknown metric {name!r}; choose one of {list(functions)}")
    return functions[name]


def all_metrics(y: np.ndarray, p: np.ndarray, threshold: float, bins: int) -> dict[str, float | None]:
    """Every metric in ``NAMES``; AUC is None when the rows hold one class only."""
    values = {name: metric_function(name, threshold, bins)(y, p) for name in NAMES}
    return {name: (v if np.isfinite(v) else None) for name, v in values.items()}


@dataclass(frozen=True)
class Curve:
    """ROC curve points as KFP's ``log_roc_curve`` takes them."""

    fpr: list[float]
    tpr: list[float]
    thresholds: list[float]


def roc_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at each distinct score, scikit-learn's ``roc_curve(y, p,
    drop_intermediate=True)``: scores descending (stable sort), collinear points dropped, a first point with
    threshold +inf where nothing is predicted positive."""
    order = np.argsort(p, kind="mergesort")[::-1]
    scores, labels = p[order], np.asarray(y, dtype=np.float64)[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # the last row of each distinct score
    tps = np.cumsum(labels)[last]
    fps = 1 + last - tps
    thresholds = scores[last]
    if len(fps) > 2:
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    with np.errstate(invalid="ignore", divide="ignore"):  # one class only: nan, as scikit-learn gives
        return fps / fps[-1], tps / tps[-1], np.r_[np.inf, thresholds]


def roc_points(y: np.ndarray, p: np.ndarray, max_points: int) -> Curve:
    """The ROC curve (``roc_curve``: collinear points dropped), thinned to at most ``max_points`` evenly spaced
    points that keep both ends. Its first point (nothing predicted positive) has threshold +inf, written as 1.0
    (JSON has no infinity); every threshold is clipped to [0, 1]."""
    fpr, tpr, thr = roc_curve(y, p)
    if len(fpr) > max_points:
        keep = np.unique(np.round(np.linspace(0, len(fpr) - 1, max_points)).astype(np.int64))
        fpr, tpr, thr = fpr[keep], tpr[keep], thr[keep]
    thr = np.clip(np.where(np.isfinite(thr), thr, 1.0), 0.0, 1.0)
    return Curve([float(v) for v in fpr], [float(v) for v in tpr], [float(v) for v in thr])


def confusion(y: np.ndarray, p: np.ndarray, threshold: float) -> list[list[int]]:
    """2 x 2 confusion matrix, rows = true class (0, 1), columns = predicted class (0, 1)."""
    tn, fp, fn, tp = _counts(y, p, threshold)
    return [[tn, fp], [fn, tp]]


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int) -> list[dict[str, float | int | None]]:
    """Per bin: its range, rows, mean predicted probability and observed positive rate (None when empty)."""
    b = bin_index(p, bins)
    rows = []
    for i in range(bins):
        hit = b == i
        n = int(hit.sum())
        rows.append({"low": i / bins, "high": (i + 1) / bins, "rows": n,
                     "mean_predicted": float(p[hit].mean()) if n else None,
                     "observed_rate": float(y[hit].mean()) if n else None})
    return rows
