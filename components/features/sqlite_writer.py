"""Guarded writes into Feast's SQLite online store, straight from Arrow batches.

Feast's ``online_write_batch`` on SQLite upserts row by row with no timestamp check. This writer stores the same
table layout (entity key, feature name, serialized value, value text, event/created epoch seconds as Feast's
adapter computes them) with one ``executemany`` upsert per batch. Two guards keep an older row from replacing a
newer one, each enough on its own:

- read side: inside a write-locked transaction, the stored event timestamps of the batch's entities are read and
  only strictly newer rows (compared at the whole seconds SQLite keeps) are written; the read is skipped only
  while the table holds nothing but this writer's own rows (empty when the writer was made, and no other
  connection has committed since: ``PRAGMA data_version``), since each entity comes in one batch only;
- SQL side: the upsert's ``WHERE excluded.event_ts > event_ts``.

``written`` counts the rows the database actually changed. Tests check that it stores exactly what Feast's own
writer stores.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from components.features import encode
from components.features.guard import GuardCounts, sqlite_raw_timestamps, sqlite_table, sqlite_transaction

if TYPE_CHECKING:
    from feast import FeatureView
    from feast.infra.online_stores.online_store import OnlineStore
    from feast.repo_config import RepoConfig

COLUMNS = {"entity_key", "feature_name", "value", "value_text", "vector_value", "event_ts", "created_ts"}


def usable(store: OnlineStore, config: RepoConfig, fv: FeatureView) -> bool:
    """SQLite with Feast's plain table layout (no value_num / vector columns) and scalar columns only."""
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    if not isinstance(store, SqliteOnlineStore) or getattr(config.online_store, "vector_enabled", False) \
            or getattr(config.online_store, "enable_openai_compatible_store", False):
        return False
    features = [f.dtype.to_value_type().name for f in fv.features]
    keys = [c.dtype.to_value_type().name for c in fv.entity_columns]
    if not (encode.supported(features) and encode.supported(keys, keys=True)) or fv.batch_source is None:
        return False
    conn = store._get_conn(config)
    return {r[1] for r in conn.execute(f"PRAGMA table_info({sqlite_table(config, fv)})")} == COLUMNS


def _epochs(col: pa.Array | pa.ChunkedArray) -> list[int | None]:
    """``int(naive_utc.timestamp())`` per value, as Feast's SQLite adapter stores timestamps (local-time read)."""
    # Casting drops the zone and keeps the UTC instant: the naive UTC wall clock Feast hands to the adapter.
    return [None if t is None else int(t.timestamp()) for t in pc.cast(col, pa.timestamp("us"), safe=False).to_pylist()]


def _stored_epoch(value: Any) -> int | None:
    if value is None or isinstance(value, int):
        return value
    text = value.decode() if isinstance(value, bytes) else str(value)
    return int(datetime.fromisoformat(text).replace(tzinfo=None).timestamp())


class SqliteWriter:
    """Writes one feature view's batches (one row per entity; each entity in one batch)."""

    def __init__(self, store: OnlineStore, config: RepoConfig, fv: FeatureView) -> None:
        self.conn = store._get_conn(config)  # type: ignore[attr-defined]
        self.fv, self.table = fv, sqlite_table(config, fv)
        self.keys = {c.name: c.dtype.to_value_type().name for c in fv.entity_columns}
        self.kinds = {f.name: f.dtype.to_value_type().name for f in fv.features}
        self.version = self._data_version()  # first: a commit after it shows as a changed version
        self.fresh = self.conn.execute(f"SELECT 1 FROM {self.table} LIMIT 1").fetchone() is None
        self.sql = (f"INSERT INTO {self.table} (entity_key, feature_name, value, value_text, event_ts, created_ts) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(entity_key, feature_name) DO UPDATE SET "
                    "value = excluded.value, value_text = excluded.value_text, event_ts = excluded.event_ts, "
                    "created_ts = excluded.created_ts WHERE excluded.event_ts > event_ts")

    def _data_version(self) -> int:
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def key_order(self, table: pa.Table) -> pa.Table:
        """``table`` sorted by stored entity key, so each batch touches one key range of the B-tree (random keys
        across batches make every commit rewrite and journal pages all over the table)."""
        keys = encode.entity_keys({k: table.column(k).combine_chunks() for k in self.keys}, self.keys)
        return table.take(pc.sort_indices(pa.array(keys, pa.binary())))

    def stored(self, keys: list[bytes]) -> list[int | None]:
        """Stored event epochs (as Feast stores them) of ``keys``; ``None`` where nothing is stored."""
        return [_stored_epoch(v) for v in sqlite_raw_timestamps(self.conn, self.table, keys)]

    def newer(self, keys: list[bytes], epochs: list[int | None]) -> tuple[list[int], GuardCounts]:
        """The read-side guard: indices of rows strictly newer than the stored ones, and the skipped counts."""
        keep, counts = [], GuardCounts()
        for i, old in enumerate(self.stored(keys)):
            new = epochs[i]
            if old is None or (new is not None and new > old):
                keep.append(i)
            elif new == old:
                counts.equal += 1
            else:
                counts.older += 1
        return keep, counts

    def write(self, batch: pa.RecordBatch) -> GuardCounts:
        """Write the rows of ``batch`` that are strictly newer than the stored ones."""
        source = self.fv.batch_source
        assert source is not None
        keys = encode.entity_keys({k: batch.column(k) for k in self.keys}, self.keys)
        epochs = _epochs(batch.column(source.timestamp_field))
        created = (_epochs(batch.column(source.created_timestamp_column)) if source.created_timestamp_column
                   else [None] * batch.num_rows)
        encoded = {name: encode.values(batch.column(name), kind) for name, kind in self.kinds.items()}
        with sqlite_transaction(self.conn):
            if self._data_version() != self.version:  # another connection committed: its rows may be newer
                self.fresh = False
            keep, counts = (list(range(batch.num_rows)), GuardCounts()) if self.fresh else self.newer(keys, epochs)
            params = [(keys[i], name, blobs[i], texts[i], epochs[i], created[i])
                      for i in keep for name, (blobs, texts) in encoded.items()]
            params.sort(key=lambda p: (p[0], p[1]))  # primary-key order: sequential B-tree inserts
            changed = self.conn.executemany(self.sql, params).rowcount if params else 0
            # An entity's rows share one event timestamp, so the WHERE takes or leaves all of them together.
            counts.written = changed // max(len(self.kinds), 1)
            if counts.written < len(keep):  # the SQL guard refused rows the read side let through
                self._count_refused([keys[i] for i in keep], [epochs[i] for i in keep], counts)
        return counts

    def _count_refused(self, keys: list[bytes], epochs: list[int | None], counts: GuardCounts) -> None:
        """Add the rows the upsert left alone to ``counts``: stored newer (older) or the same (equal)."""
        refused = len(keys) - counts.written
        older = sum(1 for new, old in zip(epochs, self.stored(keys), strict=True)
                    if old is not None and new is not None and old > new)
        counts.older += older
        counts.equal += refused - older
