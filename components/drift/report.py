"""The HTML report people look at: Evidently 0.7's ``DataDriftPreset`` (plus a ``ValueDrift`` of the
prediction) on a seeded sample of at most ``report_rows`` rows of each side, with the verdict's methods and
thresholds for every column, and a banner stating the sample's bound and the verdict it illustrates.

Evidently renders its plots inside ``Report.run`` (seconds per 100k rows), hence the bound; the verdict itself
(``components.drift.stats``) uses every row or ``max_rows``. Columns Evidently cannot test on the sample (no
values left on one side: it raises) are left out of the report and named in the banner."""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass
from typing import Any

import polars as pl

from components.drift.config import DriftConfig
from components.drift.methods import METHODS
from components.drift.sample import bounded, describe
from components.drift.stats import ColumnDrift, family


@dataclass(frozen=True)
class ReportSample:
    """What the report shows: sample sizes per side and the columns left out (column -> why)."""

    reference_rows: int
    reference_available: int
    current_rows: int
    current_available: int
    left_out: dict[str, str]

    def to_dict(self) -> dict[str, object]:
        return {"reference_rows": self.reference_rows, "reference_available": self.reference_available,
                "current_rows": self.current_rows, "current_available": self.current_available,
                "left_out": self.left_out}


def _has_values(series: pl.Series) -> bool:
    fam = family(series.dtype)
    if fam == "numeric":
        return bool(series.cast(pl.Float64).is_finite().any())
    return fam == "text" and series.null_count() < series.len()


def _pandas(df: pl.DataFrame) -> Any:
    """pandas copy with string-like columns as plain strings (Evidently reads categoricals by value)."""
    text = [c for c, t in df.schema.items() if family(t) == "text"]
    return df.with_columns(pl.col(text).cast(pl.String)).to_pandas() if text else df.to_pandas()


def render_report(reference: pl.DataFrame, current: pl.DataFrame, features: list[ColumnDrift],
                  prediction: ColumnDrift | None, cfg: DriftConfig, banner: str) -> tuple[str, ReportSample]:
    """Evidently's HTML for the tested ``features`` and ``prediction`` on the bounded samples, with ``banner``
    and the sample's description placed at the top of the page."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    ref = bounded(reference, cfg.report_rows, cfg.seed)
    cur = bounded(current, cfg.report_rows, cfg.seed)
    tested = [*features, *([prediction] if prediction else [])]
    left_out = {c.column: "no current values" for c in tested if c.score is None}
    left_out |= {c.column: "no values in the report's sample of one side" for c in tested
                 if c.column not in left_out
                 and not (_has_values(ref.get_column(c.column)) and _has_values(cur.get_column(c.column)))}
    shown = [c for c in tested if c.column not in left_out]
    by_value = {c.column for c in shown if c.kind == "categorical" or not METHODS[c.method].kinds & {"numerical"}}
    definition = DataDefinition(numerical_columns=[c.column for c in shown if c.column not in by_value],
                                categorical_columns=[c.column for c in shown if c.column in by_value])
    names = [c.column for c in shown]
    sample = ReportSample(ref.height, reference.height, cur.height, current.height, left_out)
    shown_features = [c for c in shown if prediction is None or c.column != prediction.column]
    metrics: list[Any] = []
    if shown_features:
        metrics.append(DataDriftPreset(columns=[c.column for c in shown_features], drift_share=cfg.drift_share,
                                       per_column_method={c.column: c.method for c in shown_features},
                                       per_column_threshold={c.column: c.threshold for c in shown_features}))
    if prediction is not None and prediction.column not in left_out:
        metrics.append(ValueDrift(column=prediction.column, method=prediction.method,
                                  threshold=prediction.threshold))
    body = ""
    if metrics:
        with warnings.catch_warnings():  # Evidently's plots divide by zero on constant columns
            warnings.simplefilter("ignore")
            snapshot = Report(metrics, include_tests=True).run(
                Dataset.from_pandas(_pandas(cur.select(names)), data_definition=definition),
                Dataset.from_pandas(_pandas(ref.select(names)), data_definition=definition))
            body = snapshot.get_html_str(as_iframe=False)
    return _with_banner(body, banner, sample, cfg), sample


def bound_statement(sample: ReportSample, cfg: DriftConfig) -> str:
    """The sentence stating the report's sample and its bound."""
    cur = describe(sample.current_rows, sample.current_available, cfg.report_rows, cfg.seed)
    ref = describe(sample.reference_rows, sample.reference_available, cfg.report_rows, cfg.seed)
    return (f"This Evidently report shows a seeded sample bounded by report_rows={cfg.report_rows:,} "
            f"(seed {cfg.seed}): current {cur}; reference {ref}. Its scores come from that sample and can differ "
            "from the verdict's.")


def _with_banner(body: str, banner: str, sample: ReportSample, cfg: DriftConfig) -> str:
    left = "".join(f"<li>{html.escape(c)}: {html.escape(why)}</li>" for c, why in sample.left_out.items())
    block = ('<div id="drift-check-banner" style="font-family:sans-serif;padding:12px 16px;margin:8px;'
             'border:1px solid #999;background:#f6f6f6">'
             f"<p><strong>{html.escape(banner)}</strong></p><p>{html.escape(bound_statement(sample, cfg))}</p>"
             + (f"<p>Left out of this report:</p><ul>{left}</ul>" if left else "") + "</div>")
    if not body:
        return f"<!DOCTYPE html><html><head><meta charset=\"UTF-8\"></head><body>{block}</body></html>"
    at = body.find("<body")
    end = body.find(">", at) + 1 if at >= 0 else 0
    return body[:end] + block + body[end:]
