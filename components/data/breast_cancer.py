"""scikit-learn's breast_cancer data set (shipped inside the package) reshaped as an event table, so the
pipelines can be shown to learn real signal offline."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def breast_cancer_events(start: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> pl.DataFrame:
    """One event per patient: ``entity_id``, ``event_timestamp`` (one hour apart), 30 features, ``label``
    (1 = malignant)."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    features = {_snake(n): data.data[:, i] for i, n in enumerate(data.feature_names)}
    n = data.data.shape[0]
    return pl.DataFrame({
        "entity_id": np.arange(1, n + 1, dtype=np.int64),
        "event_timestamp": pl.datetime_range(start, start + timedelta(hours=n - 1), interval="1h",
                                             eager=True, time_unit="us"),
        **features,
        "label": (1 - data.target).astype(np.int64),
    })
