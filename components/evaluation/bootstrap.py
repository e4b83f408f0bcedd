"""Paired, class-stratified bootstrap of a metric difference between two models scored on the same rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """``estimate`` = metric(a) - metric(b) on all rows; [``low``, ``high``] its two-sided percentile interval."""

    estimate: float
    low: float
    high: float
    confidence: float
    resamples: int


def paired_difference(y: np.ndarray, a: np.ndarray, b: np.ndarray, metric: Callable[[np.ndarray, np.ndarray], float],
                      *, resamples: int, confidence: float, seed: int) -> Interval:
    """Resample rows with replacement within each class (class counts fixed, so AUC is always defined), score
    both models on the same resampled rows, and take the percentiles of the differences."""
    positives, negatives = np.flatnonzero(y > 0.5), np.flatnonzero(y <= 0.5)
    if not len(positives) or not len(negatives):
        raise ValueError("the paired bootstrap needs rows of both classes")
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    for i in range(resamples):
        idx = np.concatenate([rng.choice(positives, len(positives)), rng.choice(negatives, len(negatives))])
        diffs[i] = metric(y[idx], a[idx]) - metric(y[idx], b[idx])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(diffs, [alpha, 1.0 - alpha])
    return Interval(estimate=metric(y, a) - metric(y, b), low=float(low), high=float(high), confidence=confidence,
                    resamples=resamples)
