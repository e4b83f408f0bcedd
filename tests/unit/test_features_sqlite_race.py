"""Two writers racing on one SQLite online table: an older window never replaces a newer value, and ``written``
counts the rows the database actually changed.

Each writer has its own connection (its own FeatureStore), as two materialize steps would. The writers are made
while the table is empty (so both have "read empty"), a barrier holds them until both exist, then they write. The
SQLite writer has two guards (the read side, the upsert's WHERE); each is also tested alone by disabling the
other in a subclass, and a control with both disabled shows the race does reach the overwrite.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from components.features import guard
from components.features.convert import arrow_rows
from components.features.guard import GuardCounts, GuardedWriter
from components.features.materialize import batch_writer
from components.features.repo import opened_store
from components.features.sqlite_writer import SqliteWriter
from tests.unit.test_features_suite import DAY, T0, FeatureSuite, online_values, three_versions

ENTITIES = list(range(1, 41))
VIEW = "activity"
UNGUARDED_SQL = ("INSERT INTO {table} (entity_key, feature_name, value, value_text, event_ts, created_ts) "
                 "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(entity_key, feature_name) DO UPDATE SET "
                 "value = excluded.value, value_text = excluded.value_text, event_ts = excluded.event_ts, "
                 "created_ts = excluded.created_ts")


class SqlGuardOnly(SqliteWriter):
    """The read side disabled: every row goes to the upsert, as if the stored timestamps read empty."""

    def newer(self, keys: list[bytes], epochs: list[int | None]) -> tuple[list[int], GuardCounts]:
        return list(range(len(keys))), GuardCounts()


class ReadGuardOnly(SqliteWriter):
    """The SQL side disabled: the upsert replaces whatever is stored."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.sql = UNGUARDED_SQL.format(table=self.table)


class Unguarded(SqlGuardOnly, ReadGuardOnly):
    """Both disabled: the control that shows the race reaches the overwrite."""


@pytest.fixture
def repo(tmp_path: Path) -> str:
    return FeatureSuite().apply(tmp_path, {}, three_versions(range(ENTITIES[0], ENTITIES[-1] + 1)))


def window(day: int) -> pa.RecordBatch:
    data = three_versions(range(ENTITIES[0], ENTITIES[-1] + 1)).filter(pl.col("event_timestamp") == T0 + day * DAY)
    return data.to_arrow().combine_chunks().to_batches()[0]


@contextmanager
def writers(repo: str, make: Callable[[Any, Any, Any], Callable[[pa.RecordBatch], GuardCounts]],
            n: int = 2) -> Iterator[list[Callable[[pa.RecordBatch], GuardCounts]]]:
    """``n`` writers of the view, each on its own store connection, all made before any writes."""
    with ExitStack() as stack:
        made = []
        for _ in range(n):
            store = stack.enter_context(opened_store(repo))
            fv = store.registry.get_feature_view(VIEW, store.project)
            made.append(make(store._get_provider().online_store, store.config, fv))
        yield made


def race(write_newer: Callable[[pa.RecordBatch], GuardCounts], write_older: Callable[[pa.RecordBatch], GuardCounts],
         order: str) -> tuple[GuardCounts, GuardCounts]:
    """Write day 2 (newer) and day 0 (older) from two threads that start together; ``order`` forces who commits
    first (``free``: whoever gets the lock)."""
    barrier, first_done = threading.Barrier(2), threading.Event()
    results: dict[str, GuardCounts] = {}
    errors: list[BaseException] = []

    def run(name: str, write: Callable[[pa.RecordBatch], GuardCounts], batch: pa.RecordBatch) -> None:
        try:
            barrier.wait(timeout=30)
            if order != "free" and not order.startswith(name):
                assert first_done.wait(timeout=30)
            results[name] = write(batch)
            first_done.set()
        except BaseException as err:  # re-raised in the main thread
            errors.append(err)
            first_done.set()

    threads = [threading.Thread(target=run, args=("newer", write_newer, window(2))),
               threading.Thread(target=run, args=("older", write_older, window(0)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    if errors:
        raise errors[0]
    return results["newer"], results["older"]


def amounts(repo: str) -> list[float]:
    return online_values(repo, ENTITIES, ("activity:amount",))["amount"]


NEWER = [100.0 * e + 2 for e in ENTITIES]
N = len(ENTITIES)


def sqlite_writer(online: Any, config: Any, fv: Any) -> Callable[[pa.RecordBatch], GuardCounts]:
    """The writer materialize picks for this view (the real selection path)."""
    empty = pa.Table.from_batches([window(0).slice(0, 0)])
    _, write = batch_writer(online, config, fv, empty)
    assert isinstance(getattr(write, "__self__", None), SqliteWriter)
    return write


@pytest.mark.parametrize("order", ["newer_first", "older_first", "free"])
def test_racing_writers_on_an_empty_table_keep_the_newer_value_with_exact_counts(repo: str, order: str) -> None:
    with writers(repo, sqlite_writer) as (a, b):
        newer, older = race(a, b, order)
    assert amounts(repo) == NEWER
    assert newer.written == N and (newer.older, newer.equal) == (0, 0)
    if order == "newer_first":
        assert (older.written, older.older) == (0, N)  # nothing of the older window was written
    elif order == "older_first":
        assert (older.written, older.older) == (N, 0)  # written, then replaced by the newer window
    else:
        assert (older.written, older.older) in {(0, N), (N, 0)}


@pytest.mark.parametrize("kind,older_counts", [(ReadGuardOnly, (0, N, 0)), (SqlGuardOnly, (0, N, 0))])
def test_each_guard_alone_keeps_the_newer_value(repo: str, kind: type[SqliteWriter],
                                                older_counts: tuple[int, int, int]) -> None:
    def make(*args: Any) -> Callable[[pa.RecordBatch], GuardCounts]:
        return kind(*args).write

    with writers(repo, make) as (a, b):
        newer, older = race(a, b, "newer_first")
    assert amounts(repo) == NEWER
    assert newer.written == N and (older.written, older.older, older.equal) == older_counts


def test_sql_guard_alone_counts_rows_it_refused_as_equal_or_older(repo: str) -> None:
    def make(*args: Any) -> Callable[[pa.RecordBatch], GuardCounts]:
        return SqlGuardOnly(*args).write

    with writers(repo, make, n=1) as (write,):
        assert write(window(2)).written == N
        again = write(window(2))
        mixed = write(pa.concat_batches([window(0).slice(0, 10), window(2).slice(10)]))
    assert (again.written, again.older, again.equal) == (0, 0, N)
    assert (mixed.written, mixed.older, mixed.equal) == (0, 10, N - 10)
    assert amounts(repo) == NEWER


def test_without_either_guard_the_race_overwrites_newer_values(repo: str) -> None:
    """The control: the race above does reach the overwrite the guards prevent."""
    def make(*args: Any) -> Callable[[pa.RecordBatch], GuardCounts]:
        return Unguarded(*args).write

    with writers(repo, make) as (a, b):
        race(a, b, "newer_first")
    assert amounts(repo) == [100.0 * e for e in ENTITIES]


def test_generic_writer_on_sqlite_reads_and_writes_under_one_lock(repo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The path of views the SQLite writer does not cover (e.g. ``feast init``'s Map/Struct features): the older
    writer pauses between its read and its write; the newer writer must not slip in between."""
    older_read, newer_done = threading.Event(), threading.Event()
    read = guard.stored_timestamps

    def pausing_read(*args: Any) -> Any:
        out = read(*args)
        if threading.current_thread().name == "older":
            older_read.set()
            newer_done.wait(timeout=2)  # unlocked code lets the newer writer commit here
        return out

    monkeypatch.setattr(guard, "stored_timestamps", pausing_read)

    def generic(online: Any, config: Any, fv: Any) -> Callable[[pa.RecordBatch], GuardCounts]:
        writer = GuardedWriter(online, config, fv)
        keys = {c.name: c.dtype.to_value_type() for c in fv.entity_columns}
        return lambda batch: writer.write(arrow_rows(batch, fv, keys))

    results: dict[str, GuardCounts] = {}
    with writers(repo, generic) as (newer, older):
        def run_older() -> None:
            results["older"] = older(window(0))

        def run_newer() -> None:
            assert older_read.wait(timeout=30)
            results["newer"] = newer(window(2))
            newer_done.set()

        threads = [threading.Thread(target=run_older, name="older"), threading.Thread(target=run_newer, name="newer")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert amounts(repo) == NEWER
    assert (results["older"].written, results["newer"].written) == (N, N)  # older first, then replaced
