"""Tuning reports: the trials table (CSV / Parquet), the best parameters (JSON, ``BestParams``), the summary, and
an optimization history page (HTML) for the KFP UI.

The HTML renders offline: with plotly importable it is Optuna's optimization-history figure with plotly.js inlined
(no CDN), otherwise a small SVG chart drawn here. Either way there are no external references.
"""

from __future__ import annotations

import html
import importlib.util
import io
import json
import math
from typing import Any, Literal

import optuna
import polars as pl

from components._core.artifacts import format_of, open_atomic, write_json, write_text
from components.tuning.optuna_engine import TrialOutcome, TuningResult, join_uri

Renderer = Literal["auto", "plotly", "svg"]
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


def plotly_available() -> bool:
    return importlib.util.find_spec("plotly") is not None


def history_html(result: TuningResult, renderer: Renderer = "auto") -> str:
    """A self-contained optimization history page (objective value per trial and the best so far)."""
    if renderer == "plotly" or (renderer == "auto" and plotly_available()):
        return _plotly_html(result)
    return _svg_html(result)


def _plotly_html(result: TuningResult) -> str:
    study = optuna.create_study(direction=result.spec.direction, study_name=result.study_name)
    study.add_trials([t for t in result.frozen_trials if t.state.is_finished()])
    fig = optuna.visualization.plot_optimization_history(study, target_name=result.spec.metric)
    fig.update_layout(title=f"Optimization history: {result.study_name}")
    return str(fig.to_html(full_html=True, include_plotlyjs=True, include_mathjax=False))


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _svg_html(result: TuningResult, width: int = 720, height: int = 360) -> str:
    """A dependency-free SVG chart: succeeded trials as dots, the best-so-far as a step line, in completion
    order; early-stopped trials as hollow dots at their last value."""
    table = result.trials.filter(pl.col("completion_order").is_not_null() & pl.col("value").is_not_null())
    table = table.sort("completion_order")
    metric, direction = result.spec.metric, result.spec.direction
    title = f"Optimization history: {result.study_name}"
    pad_l, pad_r, pad_t, pad_b = 70, 20, 40, 50
    pw, ph = width - pad_l - pad_r, height - pad_t - pad_b
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
        f'<rect x="{pad_l}" y="{pad_t}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
    ]
    rows = table.select("completion_order", "value", "state", "name").rows()
    if rows:
        values = [float(r[1]) for r in rows]
        lo, hi = min(values), max(values)
        if math.isclose(lo, hi):
            lo, hi = lo - 0.5, hi + 0.5
        n = len(rows)

        def x(i: int) -> float:
            return pad_l + (pw * (i + 0.5) / n)

        def y(v: float) -> float:
            return pad_t + ph * (1 - (v - lo) / (hi - lo))

        best: float | None = None
        path: list[str] = []
        for i, (_order, value, state, name) in enumerate(rows):
            v = float(value)
            succeeded = state == TrialOutcome.SUCCEEDED.value
            fill = "#1f77b4" if succeeded else "none"
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="4" fill="{fill}" stroke="#1f77b4">'
                         f"<title>{html.escape(str(name))}: {_fmt(v)} ({html.escape(str(state))})</title></circle>")
            if succeeded:
                better = best is None or (v < best if direction == "minimize" else v > best)
                if better:
                    best = v
            if best is not None:
                path.append(f"{'M' if not path else 'L'}{x(i):.1f},{y(best):.1f}")
        if path:
            parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="#d62728" stroke-width="2"/>')
        for v in (lo, (lo + hi) / 2, hi):
            parts.append(f'<text x="{pad_l - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">'
                         f"{_fmt(v)}</text>")
    else:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no finished trial with a value'
                     "</text>")
    parts += [
        f'<text x="{pad_l + pw / 2}" y="{height - 12}" font-size="12" text-anchor="middle">trial, in completion '
        "order</text>",
        f'<text x="16" y="{pad_t + ph / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 16 {pad_t + ph / 2})">{html.escape(metric)}</text>',
        "</svg>",
    ]
    summary = html.escape(json.dumps(result.to_metadata(), indent=2, sort_keys=True, default=str))
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h3>{html.escape(title)}</h3>"
        f"<p>{html.escape(direction)} {html.escape(metric)}; dots: trials (hollow: early-stopped), "
        "line: best so far.</p>" + "".join(parts) + f"<pre>{summary}</pre></body></html>\n"
    )


def write_history_html(result: TuningResult, uri: str, renderer: Renderer = "auto") -> None:
    write_text(history_html(result, renderer), uri)


def write_reports(result: TuningResult, output_dir: str, renderer: Renderer = "auto") -> dict[str, str]:
    """Write every report under ``output_dir``; returns name -> URI. The best parameters are written only when
    a trial succeeded."""
    out = {k: join_uri(output_dir, v) for k, v in FILES.items()}
    write_trials_table(result, out["trials_csv"])
    write_trials_table(result, out["trials_parquet"])
    write_json(result.to_metadata(), out["summary"])
    write_history_html(result, out["history"], renderer)
    if result.best() is not None:
        write_best_params(result, out["best_params"])
    else:
        del out["best_params"]
    return out
