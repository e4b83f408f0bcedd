"""The guard's decision (pure) and, on SQLite, proof that it is needed: Feast's own materialize regresses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from components.features.guard import _from_sqlite, newer_rows
from components.features.materialize import materialize
from components.features.repo import opened_store
from tests.unit.test_features_suite import DAY, T0, FeatureSuite, online_values, three_versions

NOW = datetime(2026, 3, 1, 12, 0, 0, 500_000, tzinfo=UTC)


def row(ts: datetime) -> tuple:
    return ("key", {"f": 1}, ts, None)


def test_only_strictly_newer_rows_pass() -> None:
    rows = [row(NOW), row(NOW), row(NOW), row(NOW)]
    stored = [None, NOW - timedelta(microseconds=1), NOW, NOW + timedelta(seconds=1)]
    keep, counts = newer_rows(rows, stored)
    assert keep == rows[:2] and (counts.written, counts.equal, counts.older) == (2, 1, 1)


def test_whole_second_stores_compare_at_their_precision() -> None:
    stored_by_sqlite = NOW.replace(microsecond=0)  # SQLite keeps whole epoch seconds
    keep, counts = newer_rows([row(NOW)], [stored_by_sqlite], whole_seconds=True)
    assert keep == [] and counts.equal == 1  # same row again: idempotent, not "newer"
    keep, _ = newer_rows([row(NOW)], [stored_by_sqlite], whole_seconds=False)
    assert keep == [row(NOW)]  # what a naive comparison would do: rewrite forever
    keep, counts = newer_rows([row(NOW - timedelta(seconds=1))], [stored_by_sqlite], whole_seconds=True)
    assert keep == [] and counts.older == 1


def test_naive_and_zoned_timestamps_compare_in_utc() -> None:
    naive_utc = NOW.replace(tzinfo=None)
    plus_two = NOW.astimezone(UTC).astimezone(__import__("datetime").timezone(timedelta(hours=2)))
    _, counts = newer_rows([row(naive_utc), row(plus_two)], [NOW, NOW])
    assert counts.equal == 2


def test_sqlite_raw_values_decode_as_utc() -> None:
    assert _from_sqlite(None) is None
    feast_stored = int(NOW.replace(tzinfo=None).timestamp())  # Feast's adapter: naive UTC read as local time
    assert _from_sqlite(feast_stored) == NOW.replace(microsecond=0)
    assert _from_sqlite("2026-03-01T12:00:00.500000") == NOW


def test_feast_materialize_on_sqlite_overwrites_newer_values_ours_does_not(tmp_path: Path) -> None:
    """The trap the guard exists for; if Feast ever adds a timestamp check, this test says so."""
    suite = FeatureSuite()
    data = three_versions(range(1, 4))
    theirs, ours = suite.apply(tmp_path, {}, data, "theirs"), suite.apply(tmp_path, {}, data, "ours")
    with opened_store(theirs) as store:
        store.materialize(T0 + DAY, T0 + 2 * DAY, feature_views=["activity"])
        store.materialize(T0, T0 + DAY, feature_views=["activity"])
    assert online_values(theirs, [1, 2, 3], ("activity:amount",))["amount"] == [101.0, 201.0, 301.0]
    materialize(ours, None, {"start": T0 + DAY, "end": T0 + 2 * DAY, "feature_views": ["activity"]})
    materialize(ours, None, {"start": T0, "end": T0 + DAY, "feature_views": ["activity"]})
    assert online_values(ours, [1, 2, 3], ("activity:amount",))["amount"] == [102.0, 202.0, 302.0]


def test_guard_holds_when_the_machine_is_not_on_utc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Feast's SQLite adapter stores naive UTC as local epoch seconds; the guard must read it the same way."""
    import time

    monkeypatch.setenv("TZ", "America/Sao_Paulo")  # UTC-3, no DST since 2019
    time.tzset()
    try:
        repo = FeatureSuite().apply(tmp_path, {}, three_versions(range(1, 4)))
        first = materialize(repo, None, {"start": T0 + DAY, "end": T0 + 2 * DAY})
        again = materialize(repo, None, {"start": T0 + DAY, "end": T0 + 2 * DAY})
        older = materialize(repo, None, {"start": T0, "end": T0 + DAY})
        assert (first.rows, again.rows, older.rows) == (6, 0, 0)
        assert again.to_metadata()["skipped_equal"] == 6 and older.to_metadata()["skipped_older"] == 6
        assert online_values(repo, [1, 2, 3], ("activity:amount",))["amount"] == [102.0, 202.0, 302.0]
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def _dump(repo: str, view: str) -> list[tuple]:
    import sqlite3

    with opened_store(repo) as store:
        project = store.project
    with sqlite3.connect(Path(repo) / "state" / "online.db") as conn:  # plain connection: raw stored values
        return conn.execute(f'SELECT * FROM "{project}_{view}" ORDER BY entity_key, feature_name').fetchall()


def test_sqlite_writer_stores_exactly_what_feasts_writer_stores(tmp_path: Path) -> None:
    from components.features.convert import arrow_rows
    from components.features.sqlite_writer import SqliteWriter, usable

    suite = FeatureSuite()
    data = three_versions(range(1, 5))
    data = data.with_columns(
        country=pl.when(pl.col("entity_id") == 2).then(None).otherwise(pl.col("country")),
        amount=pl.when(pl.col("entity_id") == 3).then(float("nan")).otherwise(pl.col("amount")))
    feast_repo, our_repo = suite.apply(tmp_path, {}, data, "feast"), suite.apply(tmp_path, {}, data, "ours")
    for day in (0, 2):  # a fresh table, then an update of every entity with newer rows
        snapshot = data.filter(pl.col("event_timestamp") == T0 + day * DAY)
        batch = snapshot.to_arrow().combine_chunks().to_batches()[0]
        for repo, writer in ((feast_repo, "feast"), (our_repo, "ours")):
            with opened_store(repo) as store:
                online = store._get_provider().online_store
                for view in ("activity", "profile"):
                    fv = store.registry.get_feature_view(view, store.project)
                    keys = {c.name: c.dtype.to_value_type() for c in fv.entity_columns}
                    if writer == "feast":
                        online.online_write_batch(store.config, fv, arrow_rows(batch, fv, keys), progress=None)
                    else:
                        assert usable(online, store.config, fv)
                        assert SqliteWriter(online, store.config, fv).write(batch).written == 4
    for view in ("activity", "profile"):
        theirs, ours = _dump(feast_repo, view), _dump(our_repo, view)
        assert len(ours) == 4 * (3 if view == "activity" else 4) and ours == theirs
