"""Binary classification metrics computed from logits (no scikit-learn import in the workers)."""

from __future__ import annotations

import numpy as np


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties averaged); NaN when only one class is present."""
    y = np.asarray(y, dtype=np.float64)
    n_pos = float(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    score = np.asarray(score, dtype=np.float64)
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    avg_rank = ends - (counts - 1) / 2.0  # 1-based average rank of each distinct score
    rank_sum = float(avg_rank[inverse][y == 1].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def binary_metrics(y: np.ndarray, logits: np.ndarray, prefix: str) -> dict[str, float]:
    """``{prefix}_auc``, ``{prefix}_loss`` (mean BCE) and ``{prefix}_accuracy`` at probability 0.5."""
    y = np.asarray(y, dtype=np.float64)
    z = np.asarray(logits, dtype=np.float64)
    loss = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    return {
        f"{prefix}_auc": roc_auc(y, z),
        f"{prefix}_loss": float(loss.mean()),
        f"{prefix}_accuracy": float(((z > 0) == (y > 0.5)).mean()),
    }
