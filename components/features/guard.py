"""The write guard: an online value is replaced only by a strictly newer one, on every online store.

Feast's SQLite online store upserts without comparing event timestamps, so re-materializing an older window would
overwrite newer values. The guard reads the stored event timestamps of a batch of entity keys and writes only
strictly newer rows; an equal timestamp is a no-op, which makes a repeated window idempotent. Timestamps are
compared at the precision the store keeps: SQLite stores whole epoch seconds (Feast's adapter), Redis a protobuf
timestamp. This module writes through the store's ``online_write_batch`` (Redis re-checks timestamps itself too);
``sqlite_writer`` is the faster variant used for SQLite views of scalar features. On SQLite both read and write
inside one write-locked transaction (:func:`sqlite_transaction`), so concurrent writers cannot interleave between
the read and the write; Redis relies on Feast's own timestamp check for concurrent writers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast import FeatureView
    from feast.infra.online_stores.online_store import OnlineStore
    from feast.repo_config import RepoConfig

Row = tuple[Any, ...]  # (EntityKey proto, {feature: Value proto}, event timestamp, created timestamp)
_SQLITE_CHUNK = 5_000


@dataclass
class GuardCounts:
    """Rows offered to the guard and what became of them."""

    written: int = 0
    older: int = 0
    equal: int = 0

    def add(self, other: GuardCounts) -> None:
        """Accumulate another batch's counts."""
        self.written += other.written
        self.older += other.older
        self.equal += other.equal


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def newer_rows(rows: list[Row], stored: list[datetime | None],
               whole_seconds: bool = False) -> tuple[list[Row], GuardCounts]:
    """Rows whose event timestamp is strictly newer than the stored one for the same entity (pure)."""
    keep, counts = [], GuardCounts()
    for row, old in zip(rows, stored, strict=True):
        if old is None:
            keep.append(row)
            continue
        new, prev = _utc(row[2]), _utc(old)
        if whole_seconds:
            new, prev = new.replace(microsecond=0), prev.replace(microsecond=0)
        if new > prev:
            keep.append(row)
        elif new == prev:
            counts.equal += 1
        else:
            counts.older += 1
    counts.written = len(keep)
    return keep, counts


def stored_timestamps(store: OnlineStore, config: RepoConfig, fv: FeatureView,
                      keys: list[Any]) -> tuple[list[datetime | None], bool]:
    """Stored event timestamps of ``keys`` (``None``: nothing stored) and whether they are whole seconds."""
    from feast.infra.online_stores.redis import RedisOnlineStore
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    if isinstance(store, SqliteOnlineStore):
        return _sqlite_timestamps(store, config, fv, _serialized(config, keys)), True
    if isinstance(store, RedisOnlineStore):
        return _redis_timestamps(store, config, fv, keys), False
    probe = [fv.features[0].name] if fv.features else None
    return [ts for ts, _ in store.online_read(config, fv, keys, probe)], False


def _serialized(config: RepoConfig, keys: list[Any]) -> list[bytes]:
    from feast.infra.key_encoding_utils import serialize_entity_key

    version = config.entity_key_serialization_version
    return [serialize_entity_key(k, entity_key_serialization_version=version) for k in keys]


@contextmanager
def sqlite_transaction(conn: Any) -> Iterator[None]:
    """A write-locked SQLite transaction (``BEGIN IMMEDIATE``): no other connection commits while it is open, and
    reads inside it see every earlier commit. Committed on success, rolled back on error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def sqlite_table(config: RepoConfig, fv: FeatureView) -> str:
    from feast.infra.online_stores.sqlite import _quote_id, _table_id

    return _quote_id(_table_id(config.project, fv, config.registry.enable_online_feature_view_versioning))


def sqlite_raw_timestamps(conn: Any, table: str, keys: list[bytes]) -> list[Any]:
    """Stored ``event_ts`` of serialized ``keys`` as SQLite holds it (``None``: no row)."""
    found: dict[bytes, Any] = {}
    for i in range(0, len(keys), _SQLITE_CHUNK):
        chunk = keys[i:i + _SQLITE_CHUNK]
        # MAX() has no declared type, so the raw stored value comes back (no local-time converter applied).
        found.update(conn.execute(
            f"SELECT entity_key, MAX(event_ts) FROM {table} WHERE entity_key IN ({','.join('?' * len(chunk))}) "
            "GROUP BY entity_key", chunk).fetchall())
    return [found.get(k) for k in keys]


def _sqlite_timestamps(store: Any, config: RepoConfig, fv: FeatureView,
                       binary: list[bytes]) -> list[datetime | None]:
    raw = sqlite_raw_timestamps(store._get_conn(config), sqlite_table(config, fv), binary)
    return [_from_sqlite(v) for v in raw]


def _from_sqlite(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        # Feast stores int(naive_utc.timestamp()), which reads the naive value as local time; invert that.
        return datetime.fromtimestamp(int(value)).replace(tzinfo=UTC)
    text = value.decode() if isinstance(value, bytes) else str(value)
    return _utc(datetime.fromisoformat(text))


def _redis_timestamps(store: Any, config: RepoConfig, fv: FeatureView, keys: list[Any]) -> list[datetime | None]:
    from feast.infra.online_stores.helpers import _redis_key
    from feast.infra.online_stores.redis import _versioned_fv_name
    from google.protobuf.timestamp_pb2 import Timestamp

    ts_key = f"_ts:{_versioned_fv_name(fv, config)}"
    client = store._get_client(config.online_store)
    with client.pipeline(transaction=False) as pipe:
        for k in keys:
            pipe.hget(_redis_key(config.project, k, config.entity_key_serialization_version), ts_key)
        raw = pipe.execute()
    out: list[datetime | None] = []
    for value in raw:
        if value is None:
            out.append(None)
            continue
        ts = Timestamp()
        ts.ParseFromString(value)
        out.append(ts.ToDatetime(tzinfo=UTC))
    return out


class GuardedWriter:
    """Guarded writes through the store's ``online_write_batch`` (Redis, and any store without a writer of ours)."""

    def __init__(self, store: OnlineStore, config: RepoConfig, fv: FeatureView) -> None:
        from feast.infra.online_stores.sqlite import SqliteOnlineStore

        self.store, self.config, self.fv = store, config, fv
        self.sqlite = isinstance(store, SqliteOnlineStore)

    def write(self, rows: list[Row]) -> GuardCounts:
        """Write the strictly newer ``rows``; counts of written, equal and older rows."""
        if not rows:
            return GuardCounts()
        # Feast's SQLite write commits the transaction opened here (its ``with conn``), after its last row.
        lock = sqlite_transaction(self.store._get_conn(self.config)) if self.sqlite else nullcontext()  # type: ignore[attr-defined]
        with lock:
            stored, whole_seconds = stored_timestamps(self.store, self.config, self.fv, [r[0] for r in rows])
            keep, counts = newer_rows(rows, stored, whole_seconds)
            if keep:
                self.store.online_write_batch(self.config, self.fv, keep, progress=None)
        return counts


def guarded_write(store: OnlineStore, config: RepoConfig, fv: FeatureView, rows: list[Row]) -> GuardCounts:
    """Write ``rows`` (one per entity) where they are strictly newer than what the online store holds."""
    return GuardedWriter(store, config, fv).write(rows)
