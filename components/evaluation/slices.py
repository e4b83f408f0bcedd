"""Per-slice metrics over the values of one categorical column of the held-out rows; slices smaller than the
configured minimum are skipped and listed, never scored on a handful of rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from components.evaluation.config import Slicing
from components.evaluation.errors import EvaluationError
from components.evaluation.metrics import all_metrics

NULL = "(null)"


@dataclass(frozen=True)
class SliceReport:
    """Metrics of each slice large enough, and the skipped slices with their row counts."""

    column: str
    min_rows: int
    evaluated: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "min_rows": self.min_rows, "evaluated": self.evaluated,
                "skipped": self.skipped}


def slice_metrics(rows: pl.DataFrame, y: np.ndarray, p: np.ndarray, cfg: Slicing, threshold: float,
                  bins: int) -> SliceReport | None:
    """Metrics per value of ``cfg.column`` (nulls as ``(null)``), largest slices first; None when slicing is off.
    A column that is missing, or has more than ``max_slices`` values (not categorical), is an error."""
    if cfg.column is None:
        return None
    if cfg.column not in rows.columns:
        raise EvaluationError(f"slice column {cfg.column!r} is not in the training set; columns: {rows.columns}")
    values = np.array([NULL if v is None else str(v) for v in rows.get_column(cfg.column).to_list()], dtype=object)
    names, counts = np.unique(values, return_counts=True)
    if len(names) > cfg.max_slices:
        raise EvaluationError(f"slice column {cfg.column!r} has {len(names)} distinct held-out values, more than "
                              f"slices.max_slices {cfg.max_slices}: slice by a categorical column")
    report = SliceReport(cfg.column, cfg.min_rows)
    for i in sorted(range(len(names)), key=lambda j: (-int(counts[j]), str(names[j]))):
        name, n = str(names[i]), int(counts[i])
        if n < cfg.min_rows:
            report.skipped.append({"value": name, "rows": n})
            continue
        hit = values == name
        report.evaluated.append({"value": name, "rows": n, "positives": int(y[hit].sum()),
                                 **all_metrics(y[hit], p[hit], threshold, bins)})
    return report
