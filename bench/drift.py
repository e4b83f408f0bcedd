"""Drift verdict on a large batch: our per-column statistics over every row against Evidently 0.7.23's
``DataDriftPreset`` on the same rows, same machine, one run each, for an unshifted and a shifted batch.

Data: a seeded synthetic table of 13 feature columns (7 numerical, 6 categorical: strings and a 4-value integer)
with missing values in one column; the reference is the monitoring bundle's default bound (20,000 rows), the
current batch 1M rows; the shifted batch moves 5 columns. Figures: both times (ours from polars frames in memory;
Evidently's ``Dataset.from_pandas`` + ``Report.run`` from pandas frames, the pandas conversion timed apart),
per-column agreement of verdicts and methods, and the HTML report's time at its default bound.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from typing import Any

import numpy as np
import polars as pl

from components.drift.config import DriftConfig
from components.drift.methods import METHODS
from components.drift.report import render_report
from components.drift.roles import low_cardinality
from components.drift.stats import ColumnDrift, drift_columns

GOAL_SECONDS = 5.0
GOAL_RATIO = 9.0
REGIONS = [f"r{i:02d}" for i in range(20)]


def table(rows: int, seed: int, shift: float = 0.0) -> pl.DataFrame:
    """13 feature columns; ``shift`` moves amount, minutes, age, country and plan."""
    rng = np.random.default_rng(seed)
    minutes = np.abs(rng.normal(12 + 4 * shift, 6, rows)).round(3)
    minutes[rng.random(rows) < 0.05] = np.nan
    p_country = np.roll([0.2, 0.15, 0.15, 0.3, 0.12, 0.08], round(shift))
    return pl.DataFrame({
        "amount": np.exp(rng.normal(3.0 + 0.5 * shift, 0.8, rows)).round(2),
        "session_minutes": minutes,
        "account_age_days": rng.integers(0, 2000 - int(600 * shift), rows),
        "n_items": rng.poisson(3.0, rows) + 1,
        "score": rng.beta(2, 5, rows),
        "latency_ms": rng.gamma(2.0, 40.0, rows),
        "balance": rng.normal(1000, 300, rows).round(2),
        "country": np.array(["DE", "FR", "GB", "US", "IN", "BR"])[rng.choice(6, rows, p=p_country)],
        "channel": np.array(["web", "app", "store"])[rng.choice(3, rows, p=[0.5, 0.35, 0.15])],
        "device": np.array(["ios", "android", "desktop"])[rng.integers(0, 3, rows)],
        "plan": np.array(["free", "paid"])[(rng.random(rows) < 0.3 + 0.2 * shift).astype(np.int64)],
        "region": np.array(REGIONS)[rng.integers(0, len(REGIONS), rows)],
        "tier": rng.integers(0, 4, rows),
    })


def kinds_of(reference: pl.DataFrame) -> dict[str, str]:
    """The bundle's roles rule: strings and low-cardinality integers are categorical."""
    return {c: "categorical" if s.dtype == pl.String or low_cardinality(s) else "numerical"
            for c, s in reference.to_dict().items()}


def evidently(reference: Any, current: Any, kinds: dict[str, str]) -> dict[str, tuple[str, float, bool]]:
    """Evidently's DataDriftPreset on pandas frames: column -> (method, score, drifted)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=[c for c, k in kinds.items() if k == "numerical"],
                                categorical_columns=[c for c, k in kinds.items() if k == "categorical"])
    display = {s.display_name: n for n, s in METHODS.items()}
    snap = Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition))
    doc = snap.dict()
    failed = {t["metric_config"]["params"].get("column"): str(t["status"]).endswith("FAIL") for t in doc["tests"]}
    return {m["config"]["column"]: (display[m["config"]["method"]], float(m["value"]), failed[m["config"]["column"]])
            for m in doc["metrics"][1:]}


def _agreement(ours: list[ColumnDrift], theirs: dict[str, tuple[str, float, bool]]) -> tuple[list[str], float]:
    """Columns whose verdict or method differ, and the largest relative score difference."""
    differ = [c.column for c in ours if (c.method, c.drifted) != theirs[c.column][0::2]]
    rel = max(abs((c.score or 0.0) - theirs[c.column][1]) / max(abs(theirs[c.column][1]), 1e-12) for c in ours)
    return differ, rel


def main(argv: list[str] | None = None) -> int:
    """Print both times per batch, per-column agreement and the report's time, then ratio lines."""
    p = argparse.ArgumentParser(prog="bench drift", description=__doc__)
    p.add_argument("--rows", type=int, default=1_000_000, help="rows of each current batch")
    p.add_argument("--reference-rows", type=int, default=20_000)
    p.add_argument("--skip-evidently", action="store_true", help="time ours only (quick check)")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    reference = table(args.reference_rows, seed=1)
    kinds = kinds_of(reference)
    cfg = DriftConfig()
    drift_columns(reference.head(2000), reference.tail(2000), kinds, cfg)  # warm-up: imports, first calls
    figures: dict[str, tuple[float, float]] = {}
    print(f"data: current {args.rows:,} rows x {len(kinds)} columns ({sum(k == 'numerical' for k in kinds.values())} "
          f"numerical, {sum(k == 'categorical' for k in kinds.values())} categorical), reference "
          f"{args.reference_rows:,} rows; one run each, same machine")
    for name, shift in (("unshifted", 0.0), ("shifted", 1.0)):
        current = table(args.rows, seed=2, shift=shift)
        t0 = time.perf_counter()
        ours = drift_columns(reference, current, kinds, cfg)
        ours_s = time.perf_counter() - t0
        drifted = [c.column for c in ours if c.drifted]
        print(f"{'ours, ' + name + ':':<26} {ours_s:8.2f} s  drifted {len(drifted)}/{len(ours)}: {', '.join(drifted)}")
        if args.skip_evidently:
            continue
        t0 = time.perf_counter()
        ref_pd, cur_pd = reference.to_pandas(), current.to_pandas()
        convert_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        theirs = evidently(ref_pd, cur_pd, kinds)
        theirs_s = time.perf_counter() - t0
        differ, rel = _agreement(ours, theirs)
        figures[name] = (ours_s, theirs_s)
        print(f"{'evidently, ' + name + ':':<26} {theirs_s:8.2f} s  drifted {sum(v[2] for v in theirs.values())}/"
              f"{len(theirs)} (+ {convert_s:.2f} s polars -> pandas, not counted)")
        print(f"agreement, {name}: {len(ours) - len(differ)}/{len(ours)} columns same verdict and method"
              f"{' (differ: ' + ', '.join(differ) + ')' if differ else ''}; largest relative score difference "
              f"{rel:.2e}")
        del ref_pd, cur_pd
    current = table(args.rows, seed=2, shift=1.0)
    tested = drift_columns(reference, current, kinds, cfg)
    with tempfile.TemporaryDirectory():
        t0 = time.perf_counter()
        page, sample = render_report(reference, current, tested, None, cfg, "bench")
        report_s = time.perf_counter() - t0
    print(f"HTML report, shifted, default bound report_rows={cfg.report_rows:,} ({sample.current_rows:,} + "
          f"{sample.reference_rows:,} rows): {report_s:.2f} s, {len(page) / 1e6:.1f} MB")
    for name, (ours_s, theirs_s) in figures.items():
        print(f"ratio evidently/ours, {name}: {theirs_s / ours_s:.1f} (goal >= {GOAL_RATIO:g}); ours {ours_s:.2f} s "
              f"(goal <= {GOAL_SECONDS:g} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
