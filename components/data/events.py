"""A seeded generator of a realistic event table with a learnable label, an optional distribution shift and a
share of injected bad rows (for validation, drift and benchmarks)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import polars as pl
from pydantic import Field

from components._core.config import StrictConfig

COUNTRIES = ("DE", "FR", "GB", "US", "IN", "BR")
CHANNELS = ("web", "app", "store")
DEVICES = ("ios", "android", "desktop")
START = datetime(2026, 1, 1, tzinfo=UTC)  # the default start: midnight UTC of ``EventsConfig.start``
BAD_KINDS = ("null_entity", "negative_amount", "unknown_country", "nan_minutes", "inf_minutes", "future_ts",
             "duplicate_key")


class EventsConfig(StrictConfig):
    """Knobs of the demo event table."""

    rows: int = Field(default=5_000, ge=1, le=200_000_000, description="number of rows generated")
    entities: int = Field(default=500, ge=1, le=50_000_000, description="distinct entity ids")
    start: date = Field(default=START.date(), ge=date(1971, 1, 1), le=date(2200, 1, 1),
                        description="first day of the event timestamps (from midnight UTC), e.g. 2026-02-01")
    days: int = Field(default=60, ge=1, le=3650, description="span of event timestamps, in days from start")
    shift: float = Field(default=0.0, ge=-10, le=10, description="distribution shift in standard deviations (drift)")
    bad_share: float = Field(default=0.0, ge=0, le=1, description="share of rows corrupted with one defect each")
    seed: int = Field(default=7, ge=0, le=2**32 - 1, description="random seed; same seed, same table")


def start_of(cfg: EventsConfig) -> datetime:
    """The first instant of the table's time window: midnight UTC of ``cfg.start``."""
    return datetime.combine(cfg.start, time(), tzinfo=UTC)


def generate_events(cfg: EventsConfig | None = None) -> pl.DataFrame:
    """Generate the event table; bad rows (if any) carry a known defect from ``BAD_KINDS``.

    Timestamps fall in ``[start, start + days)``; the other columns do not depend on ``start``, so two tables
    that differ only in ``start`` hold the same values at shifted times."""
    cfg = cfg or EventsConfig()
    rng = np.random.default_rng(cfg.seed)
    n = cfg.rows
    entity = rng.integers(1, cfg.entities + 1, n, dtype=np.int64)
    # Entity-level traits make features and labels correlated per entity, as in real usage data.
    trait = np.random.default_rng(cfg.seed + 1).normal(0, 1, cfg.entities + 1)[entity]
    micros = np.sort(rng.integers(0, cfg.days * 86_400 * 1_000_000, n, dtype=np.int64))
    amount = np.exp(rng.normal(3.0 + 0.3 * trait + 0.5 * cfg.shift, 0.8, n)).round(2)
    n_items = rng.poisson(2.0 + np.clip(trait, -1.5, 3) + max(cfg.shift, 0), n).astype(np.int64) + 1
    minutes = np.abs(rng.normal(12 + 4 * trait + 4 * cfg.shift, 6, n)).round(3)
    age_days = rng.integers(0, 2000, cfg.entities + 1)[entity].astype(np.int64)
    p_country = np.array([0.2, 0.15, 0.15, 0.3, 0.12, 0.08])
    if cfg.shift:
        p_country = np.roll(p_country, round(cfg.shift) or 1)
    country = rng.choice(len(COUNTRIES), n, p=p_country)
    channel = rng.choice(len(CHANNELS), n, p=[0.5, 0.35, 0.15])
    device = rng.choice(len(DEVICES), n)
    logit = (1.2 * trait - 0.004 * (age_days - 1000) / 10 + 0.02 * (minutes - 12) + 0.35 * (channel == 1)
             - 0.5 * (country == 4) + 0.15 * np.log(amount) - 0.6 + rng.normal(0, 0.5, n))
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    df = pl.DataFrame({
        "entity_id": entity,
        "event_timestamp": pl.Series(micros, dtype=pl.Int64),
        "amount": amount,
        "n_items": n_items,
        "session_minutes": minutes,
        "account_age_days": age_days,
        "country": np.array(COUNTRIES)[country],
        "channel": np.array(CHANNELS)[channel],
        "device": np.array(DEVICES)[device],
        "label": label,
    }).with_columns(
        (pl.lit(start_of(cfg)).dt.cast_time_unit("us") + pl.duration(microseconds=pl.col("event_timestamp")))
        .alias("event_timestamp"),
        pl.col("entity_id").cast(pl.Int64),
    )
    return _inject_bad_rows(df, cfg, rng) if cfg.bad_share > 0 else df


def _inject_bad_rows(df: pl.DataFrame, cfg: EventsConfig, rng: np.random.Generator) -> pl.DataFrame:
    n_bad = round(cfg.bad_share * df.height)
    if n_bad == 0:
        return df
    idx = rng.choice(np.arange(1, df.height), size=min(n_bad, df.height - 1), replace=False)
    kinds = rng.integers(0, len(BAD_KINDS), len(idx))
    mask = {k: np.zeros(df.height, dtype=bool) for k in BAD_KINDS}
    for i, k in zip(idx, kinds, strict=True):
        mask[BAD_KINDS[k]][i] = True

    def m(kind: str) -> pl.Series:
        return pl.Series(mask[kind])

    future = start_of(cfg) + timedelta(days=cfg.days + 3650)
    out = df.with_columns(
        pl.when(m("null_entity")).then(None).otherwise(pl.col("entity_id")).alias("entity_id"),
        pl.when(m("negative_amount")).then(-pl.col("amount")).otherwise(pl.col("amount")).alias("amount"),
        pl.when(m("unknown_country")).then(pl.lit("XX")).otherwise(pl.col("country")).alias("country"),
        pl.when(m("nan_minutes")).then(float("nan"))
        .when(m("inf_minutes")).then(float("inf")).otherwise(pl.col("session_minutes")).alias("session_minutes"),
        pl.when(m("future_ts")).then(pl.lit(future).dt.cast_time_unit("us"))
        .otherwise(pl.col("event_timestamp")).alias("event_timestamp"),
    )
    # A duplicate key copies the previous row's (entity_id, event_timestamp).
    dup = m("duplicate_key")
    return out.with_columns(
        pl.when(dup).then(pl.col("entity_id").shift(1)).otherwise(pl.col("entity_id")).alias("entity_id"),
        pl.when(dup).then(pl.col("event_timestamp").shift(1)).otherwise(pl.col("event_timestamp"))
        .alias("event_timestamp"),
    )


def generate_entities(entities: int, seed: int = 7) -> pl.DataFrame:
    """A dimension table keyed by ``entity_id`` (segment, signup year) for join benchmarks and examples."""
    rng = np.random.default_rng(seed + 2)
    return pl.DataFrame({
        "entity_id": np.arange(1, entities + 1, dtype=np.int64),
        "segment": np.array(["consumer", "smb", "enterprise"])[rng.choice(3, entities, p=[0.7, 0.25, 0.05])],
        "signup_year": rng.integers(2015, 2026, entities).astype(np.int64),
    })
