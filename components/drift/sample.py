"""Seeded, bounded row samples: the same table, bound and seed always give the same rows, in table order."""

from __future__ import annotations

import numpy as np
import polars as pl


def bounded(df: pl.DataFrame, max_rows: int | None, seed: int) -> pl.DataFrame:
    """``df`` itself when it has at most ``max_rows`` rows (or no bound), else ``max_rows`` rows drawn without
    replacement with ``numpy.random.default_rng(seed)``, kept in table order."""
    if max_rows is None or df.height <= max_rows:
        return df
    picked = np.sort(np.random.default_rng(seed).choice(df.height, size=max_rows, replace=False))
    return df[picked]


def describe(taken: int, available: int, max_rows: int | None, seed: int) -> str:
    """How a sample was drawn, in words (for reports and results)."""
    if taken >= available:
        return f"all {available:,} rows"
    return f"{taken:,} of {available:,} rows (seeded sample, bound {max_rows:,}, seed {seed})"
