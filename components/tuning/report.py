"""Tuning reports: the trials table (CSV / Parquet), the best parameters (JSON, ``BestParams``), the summary, and
one HTML page for the KFP UI with Optuna's own visualizations (optimization history, intermediate values,
parallel coordinates, parameter importances).

The page renders offline: plotly.js comes from the installed plotly package and is inlined once for all the
figures (no CDN, no network in the browser).
"""

from __future__ import annotations

import html
import io
import json
import logging
from typing import Any

import optuna
from optuna.trial import TrialState

from components._core.artifacts import format_of, open_atomic, write_json, write_text
from components.training.launch import output_file
from components.tuning.results import TuningResult

log = logging.getLogger(__name__)
FILES = {
    "trials_csv": "trials.csv",
    "trials_parquet": "trials.parquet",
    "best_params": "best_params.json",
    "summary": "summary.json",
    "history": "optimization_history.html",
}


def write_trials_table(result: TuningResult, uri: str) -> int:
    """Write the trials table as CSV or Parquet (by suffix); returns the row count."""
    fmt = format_of(uri)
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"trials table must be .csv or .parquet, got {uri!r}")
    with open_atomic(uri, "wb") as fh:
        if fmt == "csv":
            buf = io.BytesIO()
            result.trials.write_csv(buf)
            fh.write(buf.getvalue())
        else:
            result.trials.write_parquet(fh)
    return result.trials.height


def write_best_params(result: TuningResult, uri: str) -> dict[str, Any]:
    """Write the ``BestParams`` JSON the training step consumes; raises when no trial succeeded."""
    best = result.best()
    if best is None:
        raise ValueError(f"no trial succeeded (stop reason {result.stop_reason.value}); no best parameters")
    doc = best.model_dump(mode="json")
    write_json(doc, uri)
    return doc


def _figures(result: TuningResult) -> list[Any]:
    """Optuna's figures for the finished trials (those that need more trials than ran are left out)."""
    vis = optuna.visualization
    study = optuna.create_study(direction=result.spec.direction, study_name=result.study_name)
    study.add_trials([t for t in result.frozen_trials if t.state.is_finished()])
    metric = result.spec.metric
    figures = [vis.plot_optimization_history(study, target_name=metric)]
    if any(t.intermediate_values for t in study.trials):
        figures.append(vis.plot_intermediate_values(study))
    complete = [t for t in study.trials if t.state is TrialState.COMPLETE]
    if len(complete) >= 2:
        figures.append(vis.plot_parallel_coordinate(study, target_name=metric))
        if len(result.spec.parameters) > 1:
            try:  # a seeded evaluator: the same trials give the same page
                evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
                figures.append(vis.plot_param_importances(study, evaluator=evaluator, target_name=metric))
            except (RuntimeError, ValueError) as err:  # e.g. every trial had the same parameters
                log.info("no parameter importances: %s", err)
    return figures


def history_html(result: TuningResult) -> str:
    """A self-contained, deterministic page: Optuna's figures with plotly.js inlined once, then the study summary."""
    from plotly.offline import get_plotlyjs

    title = html.escape(f"Tuning: {result.study_name}")
    parts = [fig.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False, div_id=f"figure-{i}")
             for i, fig in enumerate(_figures(result))]
    summary = html.escape(json.dumps(result.to_metadata(), indent=2, sort_keys=True, default=str))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><script type=\"text/javascript\">{get_plotlyjs()}</script></head><body>"
            f"<h3>{title}</h3><p>{html.escape(result.spec.direction)} {html.escape(result.spec.metric)}; "
            f"stopped: {html.escape(result.stop_reason.value)}</p>"
            + "".join(parts) + f"<pre>{summary}</pre></body></html>\n")


def write_reports(result: TuningResult, output_dir: str) -> dict[str, str]:
    """Write every report under ``output_dir``; returns name -> URI. The best parameters are written only when
    a trial succeeded."""
    out = {k: output_file(output_dir, v) for k, v in FILES.items()}
    write_trials_table(result, out["trials_csv"])
    write_trials_table(result, out["trials_parquet"])
    write_json(result.to_metadata(), out["summary"])
    write_text(history_html(result), out["history"])
    if result.best() is not None:
        write_best_params(result, out["best_params"])
    else:
        del out["best_params"]
    return out
