"""Online check: read features back for a sample of entities; record latency (p50/p99) and coverage.

Latency is the wall time of one ``get_online_features`` call for ``entities_per_request`` entities, after
warm-up calls. Coverage is the share of sampled entities for which at least one requested feature has a value.
Features are requested by full name (``view__feature``), so views that share feature names can be checked together.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field

from components._core.artifacts import write_json
from components._core.metrics import numeric
from components.features.repo import FeatureRepoError, opened_store
from components.features.training_set import FeatureSelection, read_entities, resolve_features


class OnlineCheckConfig(FeatureSelection):
    """Features (references, a feature service, or every feature of every view), sample, request shape, gates."""

    sample_size: int = Field(200, ge=1, le=1_000_000, description="distinct entities sampled from the table")
    entities_per_request: int = Field(10, ge=1, le=10_000, description="entities per get_online_features call")
    warmup_requests: int = Field(3, ge=0, le=1000, description="untimed calls made first")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="sampling seed")
    min_coverage: float = Field(0.0, ge=0, le=1, description="fail below this coverage")
    max_p99_ms: float | None = Field(None, gt=0, le=600_000, description="fail above this p99 latency (ms)")


@dataclass(frozen=True)
class OnlineCheckResult:
    """Latency and coverage figures."""

    entities: int
    requests: int
    covered: int
    coverage: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float

    def to_metadata(self) -> dict[str, Any]:
        """Flat figures."""
        return asdict(self)

    def metrics(self) -> dict[str, float]:
        """The figures as KFP metric values."""
        return numeric(self.to_metadata())


def online_check(repo_dir: str, entity_uri: str, report_uri: str | None = None,
                 config: OnlineCheckConfig | dict[str, Any] | str | None = None) -> OnlineCheckResult:
    """Sample entities from the table at ``entity_uri`` and time online reads from the applied repository."""
    cfg = OnlineCheckConfig.parse(config)
    with opened_store(repo_dir) as store:
        refs, keys = resolve_features(store, cfg)
        table = read_entities(entity_uri)
        missing = [k for k in keys if k not in table.columns]
        if missing:
            raise FeatureRepoError(f"the entity table has no entity join key column {missing[0]!r}")
        sample = _sample(table.select(keys).drop_nulls().unique(), cfg.sample_size, cfg.seed)
        if sample.height == 0:
            raise FeatureRepoError("the entity table has no entity rows to sample")
        rows = sample.to_dicts()
        latencies, covered = _timed_reads(store, refs, rows, cfg)
    lat = np.array(latencies)
    result = OnlineCheckResult(
        entities=len(rows), requests=len(latencies), covered=covered, coverage=round(covered / len(rows), 6),
        latency_p50_ms=round(float(np.percentile(lat, 50)), 3), latency_p99_ms=round(float(np.percentile(lat, 99)), 3),
        latency_max_ms=round(float(lat.max()), 3))
    if report_uri:
        write_json({**result.to_metadata(), "features": refs}, report_uri)
    if result.coverage < cfg.min_coverage:
        raise FeatureRepoError(f"online coverage {result.coverage:.3f} is below min_coverage {cfg.min_coverage}")
    if cfg.max_p99_ms is not None and result.latency_p99_ms > cfg.max_p99_ms:
        raise FeatureRepoError(f"online p99 latency {result.latency_p99_ms} ms is above max_p99_ms {cfg.max_p99_ms}")
    return result


def _timed_reads(store: Any, refs: list[str], rows: list[dict[str, Any]],
                 cfg: OnlineCheckConfig) -> tuple[list[float], int]:
    """Per-call latencies (ms) and the number of entities with at least one value."""
    chunks = [rows[i:i + cfg.entities_per_request] for i in range(0, len(rows), cfg.entities_per_request)]
    for i in range(cfg.warmup_requests):
        store.get_online_features(features=refs, entity_rows=chunks[i % len(chunks)], full_feature_names=True)
    latencies, covered = [], 0
    names = [r.replace(":", "__") for r in refs]
    for chunk in chunks:
        t0 = time.perf_counter()
        values = store.get_online_features(features=refs, entity_rows=chunk, full_feature_names=True).to_dict()
        latencies.append((time.perf_counter() - t0) * 1000)
        covered += sum(any(values[n][i] is not None for n in names) for i in range(len(chunk)))
    return latencies, covered


def _sample(keys: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    keys = keys.sort(keys.columns)
    return keys if keys.height <= n else keys.sample(n, seed=seed)
