"""A real tiny model on the demo events (numerical, categorical and a 4-value integer feature) for the drift
tests, trained by the trainer itself (world size 1), with its monitoring bundle written; and the batches those
tests compare with it."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from components.data.events import EventsConfig, generate_events
from components.drift.bundle import write_bundle
from components.training.config import TrainerConfig
from components.training.distributed import DistEnv
from components.training.trainer import train

TRAINER = {"hidden_sizes": [8], "max_epochs": 3, "keep_checkpoints": 1, "early_stopping": {"patience": 0}}
LATER = datetime.date(2026, 4, 1)


@dataclass(frozen=True)
class DriftModel:
    """A model folder with its bundle, and the training table it was made from."""

    model: str
    training: pl.DataFrame


def events(rows: int, seed: int, shift: float = 0.0, start: datetime.date | None = None) -> pl.DataFrame:
    """The demo events plus ``tier``, an integer feature with 4 values (categorical for Evidently)."""
    cfg = EventsConfig(rows=rows, seed=seed, shift=shift, **({"start": start} if start else {}))
    df = generate_events(cfg)
    return df.with_columns(tier=pl.Series(np.random.default_rng(seed).integers(0, 4, rows)))


def build(root: Path, *, bundle_rows: int = 20_000) -> DriftModel:
    """Train on 3,000 events and write the model's monitoring bundle."""
    training = events(3_000, seed=1)
    data = root / "training.parquet"
    training.write_parquet(data)
    train(TrainerConfig.parse(TRAINER), str(data), str(root / "run"), DistEnv())
    model = str(root / "run" / "model")
    write_bundle(model, training, max_rows=bundle_rows)
    return DriftModel(model, training)


def batch(root: Path, name: str, df: pl.DataFrame) -> str:
    """Write ``df`` as a Parquet batch under ``root``; returns its path."""
    path = root / f"{name}.parquet"
    df.write_parquet(path)
    return str(path)
