"""The drift check step the KFP wrapper calls: the model's monitoring bundle and the current batch read, the
model's predictions on the batch, per-column drift over every row (or ``max_rows``), the dataset verdict, the
JSON result and Evidently's HTML report (on a ``report_rows`` sample) written, and a result whose
``metrics()`` / ``to_metadata()`` the wrapper copies onto its outputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from components._core.artifacts import read_table, write_json, write_text
from components._core.metrics import numeric
from components.drift.bundle import Bundle, read_bundle
from components.drift.config import DriftConfig
from components.drift.report import render_report
from components.drift.sample import bounded, describe
from components.drift.stats import ColumnDrift, DriftInputError, check_types, drift_columns
from components.training.model import load_model, predict_proba

RESULT_FORMAT = "drift-result/v1"


@dataclass(frozen=True)
class DriftResult:
    """The feature columns' tests, the prediction's test (None without a prediction column) and the result
    document written to ``result_uri``."""

    columns: list[ColumnDrift]
    prediction: ColumnDrift | None
    drift_share: float
    document: dict[str, Any]

    @property
    def drifted_columns(self) -> list[str]:
        """Feature columns whose test found drift."""
        return [c.column for c in self.columns if c.drifted]

    @property
    def drifted_share(self) -> float:
        """Drifted feature columns over tested feature columns."""
        return len(self.drifted_columns) / len(self.columns)

    @property
    def drifted(self) -> bool:
        """The dataset verdict, Evidently's rule: ``drifted_share >= drift_share`` (feature columns only; the
        prediction's verdict is ``prediction.drifted``)."""
        return self.drifted_share >= self.drift_share

    def verdict(self) -> str:
        """One line: the dataset verdict, the share against ``drift_share``, the drifted columns."""
        n, k = len(self.columns), len(self.drifted_columns)
        share = f"{k} of {n} feature columns drifted (share {self.drifted_share:.2f}"
        if not self.drifted:
            return f"no drift: {share} < drift_share {self.drift_share})"
        return f"drifted: {share} >= drift_share {self.drift_share}): {', '.join(self.drifted_columns)}"

    def metrics(self) -> dict[str, float]:
        """``drift_score.<column>`` and ``drifted.<column>`` (1.0 / 0.0) per feature and for the prediction,
        ``drifted_share``, ``drifted_columns`` (a count) and ``drifted`` (1.0 / 0.0). A column with no current
        values has no score."""
        tested = [*self.columns, *([self.prediction] if self.prediction else [])]
        values: dict[str, Any] = {f"drift_score.{c.column}": c.score for c in tested}
        values |= {f"drifted.{c.column}": float(c.drifted) for c in tested}
        values |= {"drifted_share": self.drifted_share, "drifted_columns": len(self.drifted_columns),
                   "drifted": float(self.drifted)}
        return numeric(values)

    def to_metadata(self) -> dict[str, Any]:
        """Flat metadata of the result artifact."""
        doc = self.document
        return {"summary": self.verdict(), "drifted": self.drifted, "drifted_share": self.drifted_share,
                "drift_share": self.drift_share,
                "drifted_columns": ", ".join(self.drifted_columns), "columns_checked": len(self.columns),
                "prediction_drifted": self.prediction.drifted if self.prediction else None,
                "reference_rows": doc["rows"]["reference"]["used"], "current_rows": doc["rows"]["current"]["used"],
                "report_rows": doc["bounds"]["report_rows"], "model_uri": doc["model"]["uri"]}


def _check_inputs(cfg: DriftConfig, bundle: Bundle, current: pl.DataFrame, current_uri: str) -> list[str]:
    """The feature columns to test; raises naming unknown config columns, missing or mistyped batch columns."""
    roles = bundle.roles
    known = {*roles.features, *([roles.prediction] if roles.prediction else [])}
    unknown = sorted(cfg.named_columns() - known)
    if unknown:
        raise DriftInputError(f"config names columns the model does not have: {unknown}; its columns: "
                              f"{sorted(known)}")
    if roles.prediction and cfg.columns and roles.prediction in cfg.columns:
        raise DriftInputError(f"columns: {roles.prediction!r} is the prediction, checked on its own; list feature "
                              "columns only")
    if current.height == 0:
        raise DriftInputError(f"current batch {current_uri!r} has no rows")
    missing = [c for c in roles.features if c not in current.columns]
    if missing:
        raise DriftInputError(f"current batch {current_uri!r} lacks the model's feature columns {missing}")
    for name in roles.features:
        check_types(name, roles.kind(name), bundle.reference.schema[name], current.schema[name])
    return list(cfg.columns or roles.features)


def _predict(model_uri: str, rows: pl.DataFrame) -> np.ndarray:
    model, card = load_model(model_uri)
    try:
        return predict_proba(model, card, rows)
    except Exception as err:  # uncastable values, a shape the weights reject
        raise DriftInputError(f"model at {model_uri!r} cannot score the current batch: {err}") from err


def drift_step(model_path: str, current_path: str, *, config: str | dict[str, Any] | DriftConfig = "{}",
               report_uri: str, result_uri: str) -> DriftResult:
    """Compare the current batch at ``current_path`` (Parquet file or folder) with the monitoring bundle of the
    model folder ``model_path``: every feature column (or ``config.columns``) and, when the reference has a
    prediction column, the model's predictions on the batch. The batch is drifted when drifted feature columns
    / tested feature columns ``>=`` ``drift_share`` (Evidently's comparison). Writes the result JSON to
    ``result_uri`` and Evidently's report on a ``report_rows`` sample to ``report_uri``. A missing column, a
    type that differs from the reference's, an empty batch or a config naming unknown columns raise
    ``DriftInputError`` naming them; a model without a bundle raises ``BundleError``."""
    cfg = DriftConfig.parse(config)
    bundle = read_bundle(model_path)
    current = read_table(current_path)
    checked = _check_inputs(cfg, bundle, current, current_path)
    roles = bundle.roles
    ref = bounded(bundle.reference, cfg.max_rows, cfg.seed)
    cur = bounded(current.select(roles.features), cfg.max_rows, cfg.seed)
    features = drift_columns(ref, cur, {c: roles.kind(c) for c in checked}, cfg)
    prediction = None
    if roles.prediction and roles.prediction in ref.columns:
        cur = cur.with_columns(pl.Series(roles.prediction, _predict(model_path, cur)))
        prediction = drift_columns(ref, cur, {roles.prediction: "numerical"}, cfg)[0]
    drifted = [c.column for c in features if c.drifted]
    share = len(drifted) / len(features)
    verdict = "DRIFTED" if share >= cfg.drift_share else "NOT DRIFTED"
    banner = (f"Drift check verdict: {verdict} ({len(drifted)} of {len(features)} feature columns drifted, "
              f"share {share:.3f} vs drift_share {cfg.drift_share}"
              + (f"; prediction {'drifted' if prediction.drifted else 'not drifted'}" if prediction else "")
              + f"), computed on current {describe(cur.height, current.height, cfg.max_rows, cfg.seed)} and "
              f"reference {describe(ref.height, bundle.reference.height, cfg.max_rows, cfg.seed)}.")
    page, sample = render_report(ref, cur, features, prediction, cfg, banner)
    doc = {
        "format": RESULT_FORMAT, "drifted": share >= cfg.drift_share, "drift_share": cfg.drift_share,
        "rule": "drifted when drifted_share >= drift_share (feature columns only)", "drifted_share": share,
        "drifted_columns": drifted, "columns_checked": len(features),
        "prediction_drifted": prediction.drifted if prediction else None,
        "prediction": prediction.row() if prediction else None, "columns": [c.row() for c in features],
        "methods": {c.column: c.method for c in [*features, *([prediction] if prediction else [])]},
        "rows": {"reference": {"used": ref.height, "available": bundle.reference.height,
                               "training_rows": bundle.info["source_rows"], "sample": bundle.sample_note()},
                 "current": {"used": cur.height, "available": current.height}},
        "bounds": {"max_rows": cfg.max_rows, "report_rows": cfg.report_rows, "seed": cfg.seed,
                   "reference_max_rows": bundle.info["max_rows"]},
        "report": sample.to_dict(), "model": {"uri": model_path, "weights_sha256": bundle.info["weights_sha256"]},
        "current_uri": current_path, "config": cfg.model_dump(mode="json"),
    }
    write_json(doc, result_uri)
    write_text(page, report_uri)
    return DriftResult(features, prediction, cfg.drift_share, doc)
