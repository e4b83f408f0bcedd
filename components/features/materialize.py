"""Materialize: load the latest feature rows of a window into the online store, in entity batches, guarded.

Per feature view: the offline store's ``pull_latest_from_table_or_query`` gives one row per entity in the window
(bounds inclusive, as in Feast's offline stores) as one Arrow table; it is converted and written ``batch_size``
entities at a time through a guarded writer (``sqlite_writer`` on SQLite, ``guard.GuardedWriter`` elsewhere), so
memory beyond the Arrow table is bounded by the batch and newer online values are never replaced. The window is
then recorded in the registry, which is where incremental mode starts next time.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from components._core.artifacts import write_json
from components._core.config import StrictConfig
from components._core.metrics import numeric
from components.features import sqlite_writer
from components.features.convert import arrow_rows
from components.features.guard import GuardCounts, GuardedWriter
from components.features.repo import FeatureRepoError, opened_store

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MaterializeConfig(StrictConfig):
    """The window and the batching."""

    mode: Literal["window", "incremental"] = Field(
        "window", description="window: [start, end]; incremental: from each view's last materialized end to end")
    start: datetime | None = Field(None, description="window start (UTC if no zone); incremental: first-run start")
    end: datetime | None = Field(None, description="window end (UTC if no zone); default now")
    feature_views: list[str] = Field(default_factory=list, max_length=1000,
                                     description="feature views to load; empty: every online feature view")
    batch_size: int = Field(10_000, ge=1, le=30_000, description="entities converted and written per batch")

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return None if v is None else (v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC))

    @model_validator(mode="after")
    def _window(self) -> MaterializeConfig:
        if self.mode == "window" and self.start is None:
            raise ValueError("start is required in window mode")
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"start {self.start.isoformat()} is after end {self.end.isoformat()}")
        return self


@dataclass
class ViewReport:
    """One feature view's load."""

    name: str
    start: str
    end: str
    entities: int = 0
    written: int = 0
    skipped_older: int = 0
    skipped_equal: int = 0
    batches: int = 0
    seconds: float = 0.0
    pull_seconds: float = 0.0
    write_seconds: float = 0.0


@dataclass
class MaterializeResult:
    """The whole load; ``to_metadata`` gives the flat figures for metrics."""

    mode: str
    start: str
    end: str
    views: list[ViewReport] = field(default_factory=list)
    seconds: float = 0.0
    peak_rss_mb: float = 0.0

    @property
    def rows(self) -> int:
        """Rows written to the online store."""
        return sum(v.written for v in self.views)

    @property
    def entities(self) -> int:
        """Most distinct entities any one view had in its window."""
        return max((v.entities for v in self.views), default=0)

    def to_metadata(self) -> dict[str, Any]:
        """Flat figures: rows, entities, skipped counts, window, seconds, rows per second."""
        read = sum(v.entities for v in self.views)
        return {
            "mode": self.mode, "start": self.start, "end": self.end, "feature_views": len(self.views),
            "rows": self.rows, "entities": self.entities, "rows_read": read,
            "skipped_older": sum(v.skipped_older for v in self.views),
            "skipped_equal": sum(v.skipped_equal for v in self.views),
            "seconds": round(self.seconds, 3), "rows_per_s": round(read / self.seconds, 1) if self.seconds else 0.0,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
        }

    def metrics(self) -> dict[str, float]:
        """The numeric metadata entries, as KFP metric values."""
        return numeric(self.to_metadata())

    def to_report(self) -> dict[str, Any]:
        """The report artifact: totals plus one entry per view."""
        return {**self.to_metadata(), "views": [vars(v) for v in self.views]}


def materialize(repo_dir: str, report_uri: str | None = None,
                config: MaterializeConfig | dict[str, Any] | str | None = None) -> MaterializeResult:
    """Load the configured window into the online store of the applied repository at ``repo_dir``."""
    cfg = MaterializeConfig.parse(config)
    t0 = time.perf_counter()
    end = cfg.end or datetime.now(UTC)
    result = MaterializeResult(mode=cfg.mode, start=(cfg.start or EPOCH).isoformat(), end=end.isoformat())
    with opened_store(repo_dir) as store:
        for fv in _views(store, cfg.feature_views):
            start = cfg.start or EPOCH
            if cfg.mode == "incremental" and fv.most_recent_end_time is not None:
                start = fv.most_recent_end_time.astimezone(UTC)
            if start > end:  # incremental re-run of an older end: nothing newer to load
                result.views.append(ViewReport(name=fv.name, start=start.isoformat(), end=end.isoformat()))
                continue
            result.views.append(materialize_view(store, fv, start, end, cfg.batch_size))
            store.registry.apply_materialization(fv, store.project, start, end, commit=True)
    result.seconds = time.perf_counter() - t0
    result.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if report_uri:
        write_json(result.to_report(), report_uri)
    return result


def _views(store: FeatureStore, names: list[str]) -> list[FeatureView]:
    available = {fv.name: fv for fv in store.registry.list_feature_views(store.project) if fv.online and fv.enabled}
    unknown = [n for n in names if n not in available]
    if unknown:
        raise FeatureRepoError(f"feature view {unknown[0]!r} is not registered as an online feature view in project "
                               f"{store.project!r} (registered: {sorted(available)})")
    chosen = [available[n] for n in names] if names else [available[n] for n in sorted(available)]
    if not chosen:
        raise FeatureRepoError(f"project {store.project!r} has no online feature view to materialize")
    return chosen


def batch_writer(online: Any, config: Any, fv: FeatureView,
                 table: pa.Table) -> tuple[pa.Table, Callable[[pa.RecordBatch], GuardCounts]]:
    """The table in write order and a guarded writer of its batches: ours on SQLite, else the store's writes."""
    if sqlite_writer.usable(online, config, fv):
        writer = sqlite_writer.SqliteWriter(online, config, fv)
        return writer.key_order(table), writer.write
    generic = GuardedWriter(online, config, fv)
    key_types = {col.name: col.dtype.to_value_type() for col in fv.entity_columns}
    return table, lambda batch: generic.write(arrow_rows(batch, fv, key_types))


def materialize_view(store: FeatureStore, fv: FeatureView, start: datetime, end: datetime,
                     batch_size: int) -> ViewReport:
    """Pull the latest row per entity of ``fv`` in [start, end] and write it in guarded batches."""
    from feast.utils import _get_column_names

    t0 = time.perf_counter()
    report = ViewReport(name=fv.name, start=start.isoformat(), end=end.isoformat())
    provider = store._get_provider()
    entities = [store.registry.get_entity(e, store.project) for e in fv.entities]
    join_keys, features, ts_col, created_col = _get_column_names(fv, entities)
    source = fv.batch_source
    if source is None:
        raise FeatureRepoError(f"feature view {fv.name!r} has no batch source")
    job = provider.offline_store.pull_latest_from_table_or_query(
        config=store.config, data_source=source, join_key_columns=join_keys,
        feature_name_columns=features, timestamp_field=ts_col, created_timestamp_column=created_col,
        start_date=start, end_date=end)
    table = job.to_arrow()
    t_pulled = time.perf_counter()
    mapping = source.field_mapping or {}
    if mapping:
        table = table.rename_columns([mapping.get(c, c) for c in table.column_names])
    report.entities = table.num_rows
    counts, write_s = GuardCounts(), 0.0
    table, write = batch_writer(provider.online_store, store.config, fv, table)
    for offset in range(0, table.num_rows, batch_size):
        t1 = time.perf_counter()
        # One record batch per slice: Feast's converter reads only the first chunk of a multi-chunk table.
        counts.add(write(table.slice(offset, batch_size).combine_chunks().to_batches()[0]))
        write_s += time.perf_counter() - t1
        report.batches += 1
    del table
    report.written, report.skipped_older, report.skipped_equal = counts.written, counts.older, counts.equal
    report.seconds = round(time.perf_counter() - t0, 3)
    report.pull_seconds = round(t_pulled - t0, 3)
    report.write_seconds = round(write_s, 3)
    return report
