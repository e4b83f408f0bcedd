"""The materialize / guard / retrieve suite, run on every store combination we support.

``FeatureSuite`` holds the checks; a subclass provides the ``store`` fixture (a FeatureStoreConfig dict). Here it
runs on the embedded stores (SQLite online, file registry) with the file and duckdb offline stores;
``tests/integration/test_features_stores.py`` runs it on a real Redis and a real PostgreSQL registry.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from components.features.apply import apply_repo
from components.features.materialize import materialize
from components.features.online_check import online_check
from components.features.repo import FeatureRepoError, opened_store
from components.features.training_set import build_training_set

T0 = datetime(2026, 1, 10, 8, 30, 15, 123456, tzinfo=UTC)
DAY = timedelta(days=1)
ACTIVITY_TTL = timedelta(days=14)
_projects = itertools.count()


def event_rows(spec: list[tuple[int, datetime, float]]) -> pl.DataFrame:
    """Demo-schema rows: ``value`` drives every feature so a joined value tells which row it came from."""
    return pl.DataFrame({
        "entity_id": [e for e, _, _ in spec],
        "event_timestamp": [t for _, t, _ in spec],
        "amount": [float(v) for _, _, v in spec],
        "n_items": [int(v) for _, _, v in spec],
        "session_minutes": [float(v) / 2 for _, _, v in spec],
        "account_age_days": [int(v) * 10 for _, _, v in spec],
        "country": [f"C{int(v)}" for _, _, v in spec],
        "channel": ["web"] * len(spec),
        "device": ["ios"] * len(spec),
        "label": [int(v) % 2 for _, _, v in spec],
    }, schema_overrides={"entity_id": pl.Int64, "event_timestamp": pl.Datetime("us", "UTC")})


def three_versions(entities: range) -> pl.DataFrame:
    """Each entity has rows at T0, T0+1d, T0+2d with values 100*e + 0/1/2."""
    return event_rows([(e, T0 + i * DAY, 100 * e + i) for e in entities for i in range(3)])


def online_values(repo_dir: str, ids: list[int], refs: tuple[str, ...] = ("activity:amount", "profile:country")
                  ) -> dict[str, list[Any]]:
    """Values served by ``get_online_features``."""
    with opened_store(repo_dir) as store:
        return store.get_online_features(features=list(refs), entity_rows=[{"entity_id": i} for i in ids]).to_dict()


def online_state(repo_dir: str, ids: list[int]) -> dict[tuple[str, int], Any]:
    """Stored (event timestamp, serialized values) per view and entity, read through the online store."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    keys = [EntityKey(join_keys=["entity_id"], entity_values=[Value(int64_val=i)]) for i in ids]
    state: dict[tuple[str, int], Any] = {}
    with opened_store(repo_dir) as store:
        online = store._get_provider().online_store
        for fv in store.registry.list_feature_views(store.project):
            for i, (ts, vals) in zip(ids, online.online_read(store.config, fv, keys), strict=True):
                state[(fv.name, i)] = None if vals is None else (
                    ts, {k: v.SerializeToString() for k, v in sorted(vals.items())})
    return state


def stored_ts(repo_dir: str, view: str, ids: list[int]) -> list[datetime | None]:
    """Event timestamps as the guard reads them."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from components.features.guard import stored_timestamps

    keys = [EntityKey(join_keys=["entity_id"], entity_values=[Value(int64_val=i)]) for i in ids]
    with opened_store(repo_dir) as store:
        fv = store.registry.get_feature_view(view, store.project)
        return stored_timestamps(store._get_provider().online_store, store.config, fv, keys)[0]


class FeatureSuite:
    """Checks shared by every store combination."""

    @pytest.fixture
    def store(self) -> dict[str, Any]:
        raise NotImplementedError

    def apply(self, tmp_path: Path, store: dict[str, Any], data: pl.DataFrame, name: str = "repo") -> str:
        """Write ``data`` and apply the demo repository over it, in a project of its own."""
        data_path = tmp_path / f"{name}-events.parquet"
        data.write_parquet(data_path)
        cfg = {**store, "project": f"{store.get('project', 'suite')}_{next(_projects)}"}
        out = tmp_path / name
        apply_repo("demo", str(out), {"store": cfg, "source_paths": {"events": str(data_path)}})
        return str(out)

    def test_guard_older_window_never_replaces_newer_values(self, tmp_path: Path, store: dict[str, Any]) -> None:
        repo = self.apply(tmp_path, store, three_versions(range(1, 6)))
        ids = list(range(1, 6))
        first = materialize(repo, str(tmp_path / "r1.json"), {"start": T0 + DAY, "end": T0 + 2 * DAY})
        assert first.rows == 10 and first.entities == 5
        assert online_values(repo, ids)["amount"] == [100.0 * e + 2 for e in ids]
        after_newer = online_state(repo, ids)
        older = materialize(repo, None, {"start": T0, "end": T0 + DAY})
        assert older.rows == 0 and older.to_metadata()["skipped_older"] == 10
        assert online_values(repo, ids) == {"entity_id": ids, "amount": [100.0 * e + 2 for e in ids],
                                            "country": [f"C{100 * e + 2}" for e in ids]}
        assert online_state(repo, ids) == after_newer
        assert all(ts is not None and ts.replace(microsecond=0) == (T0 + 2 * DAY).replace(microsecond=0)
                   for ts in stored_ts(repo, "activity", ids))

    def test_newer_window_replaces_older_values(self, tmp_path: Path, store: dict[str, Any]) -> None:
        repo = self.apply(tmp_path, store, three_versions(range(1, 4)))
        materialize(repo, None, {"start": T0, "end": T0})
        assert online_values(repo, [1, 2, 3])["amount"] == [100.0, 200.0, 300.0]
        newer = materialize(repo, None, {"start": T0 + DAY, "end": T0 + 2 * DAY})
        assert newer.rows == 6
        assert online_values(repo, [1, 2, 3])["amount"] == [102.0, 202.0, 302.0]

    def test_same_window_twice_gives_identical_state(self, tmp_path: Path, store: dict[str, Any]) -> None:
        repo = self.apply(tmp_path, store, three_versions(range(1, 8)))
        window = {"start": T0, "end": T0 + 3 * DAY}
        once = materialize(repo, None, window)
        state = online_state(repo, list(range(1, 9)))
        twice = materialize(repo, None, window)
        assert once.rows == 14 and twice.rows == 0 and twice.to_metadata()["skipped_equal"] == 14
        assert online_state(repo, list(range(1, 9))) == state
        assert online_values(repo, [7, 8])["amount"] == [702.0, None]  # entity 8 has no data

    def test_batches_give_the_same_state_as_one_batch(self, tmp_path: Path, store: dict[str, Any]) -> None:
        data = three_versions(range(1, 12))
        small, big = self.apply(tmp_path, store, data, "small"), self.apply(tmp_path, store, data, "big")
        window = {"start": T0, "end": T0 + 3 * DAY}
        a = materialize(small, None, {**window, "batch_size": 3})
        b = materialize(big, None, window)
        assert [v.batches for v in a.views] == [4, 4] and [v.batches for v in b.views] == [1, 1]
        assert online_values(small, list(range(1, 12))) == online_values(big, list(range(1, 12)))

    def test_incremental_starts_where_the_last_run_ended(self, tmp_path: Path, store: dict[str, Any]) -> None:
        repo = self.apply(tmp_path, store, three_versions(range(1, 4)))
        first = materialize(repo, None, {"mode": "incremental", "start": T0 - DAY, "end": T0 + DAY})
        assert {v.start for v in first.views} == {(T0 - DAY).isoformat()}
        assert online_values(repo, [1])["amount"] == [101.0]
        second = materialize(repo, None, {"mode": "incremental", "end": T0 + 5 * DAY})
        assert {v.start for v in second.views} == {(T0 + DAY).isoformat()}
        assert online_values(repo, [1])["amount"] == [102.0]
        # The row at the shared bound (T0+1d) is read again and is an idempotent no-op.
        assert second.rows == 6 and second.to_metadata()["skipped_older"] == 0

    def test_unknown_feature_view_fails_before_writing(self, tmp_path: Path, store: dict[str, Any]) -> None:
        repo = self.apply(tmp_path, store, three_versions(range(1, 3)))
        with pytest.raises(FeatureRepoError, match="feature view 'nope' is not registered"):
            materialize(repo, str(tmp_path / "rep.json"), {"start": T0, "end": T0 + DAY, "feature_views": ["nope"]})
        assert not (tmp_path / "rep.json").exists()
        assert online_values(repo, [1, 2])["amount"] == [None, None]

    def test_training_set_is_point_in_time_correct_and_keeps_every_label(
            self, tmp_path: Path, store: dict[str, Any]) -> None:
        label_at = T0 + 20 * DAY
        features = event_rows([
            (1, label_at - timedelta(seconds=10), 1), (1, label_at + timedelta(seconds=1), 2),  # leak candidate
            (2, label_at, 3),  # same instant: joined
            (3, label_at - ACTIVITY_TTL, 4),  # exactly at the TTL: joined
            (4, label_at - ACTIVITY_TTL - timedelta(seconds=1), 5),  # one second past the TTL: not joined
        ])
        repo = self.apply(tmp_path, store, features)
        labels = pl.DataFrame({"entity_id": [1, 2, 3, 4, 5, 1], "event_timestamp": [label_at] * 6,
                               "label": [1, 0, 1, 0, 1, 1]},
                              schema_overrides={"event_timestamp": pl.Datetime("us", "UTC")})
        labels.write_parquet(tmp_path / "labels.parquet")
        out = tmp_path / "train.parquet"
        result = build_training_set(repo, str(tmp_path / "labels.parquet"), str(out))
        df = pl.read_parquet(out)
        assert df["entity_id"].to_list() == [1, 2, 3, 4, 5, 1] and df["label"].to_list() == [1, 0, 1, 0, 1, 1]
        assert df["amount"].to_list() == [1.0, 3.0, 4.0, None, None, 1.0]
        assert df["country"].to_list() == ["C1", "C3", "C4", "C5", None, "C1"]  # profile TTL is 90 days
        assert df.schema["event_timestamp"] == pl.Datetime("us", "UTC")
        assert (df["event_timestamp"] == label_at).all()
        meta = result.to_metadata()
        assert meta["rows"] == 6 and meta["rows_with_missing"] == 2
        assert meta["missing.amount"] == 2 and meta["missing.country"] == 1

    def test_online_check_measures_coverage_and_latency(self, tmp_path: Path, store: dict[str, Any]) -> None:
        data = three_versions(range(1, 11))
        repo = self.apply(tmp_path, store, data)
        materialize(repo, None, {"start": T0, "end": T0 + 3 * DAY})
        labels = pl.DataFrame({"entity_id": list(range(1, 21))})  # 10 of 20 entities have features
        labels.write_parquet(tmp_path / "entities.parquet")
        result = online_check(repo, str(tmp_path / "entities.parquet"), str(tmp_path / "online.json"),
                              {"sample_size": 20, "entities_per_request": 4})
        assert result.entities == 20 and result.requests == 5 and result.coverage == 0.5
        assert 0 < result.latency_p50_ms <= result.latency_p99_ms <= result.latency_max_ms
        with pytest.raises(FeatureRepoError, match=r"coverage 0\.500 is below"):
            online_check(repo, str(tmp_path / "entities.parquet"), None, {"sample_size": 20, "min_coverage": 0.9})


    def test_demo_flow_on_suffixless_artifact_paths(self, tmp_path: Path, store: dict[str, Any]) -> None:
        """As in the pipeline: validated demo events at a KFP-style path feed apply, materialize and training."""
        from components.data.events import EventsConfig, generate_events

        events = generate_events(EventsConfig(rows=400, entities=60, days=20, seed=3))
        valid = tmp_path / "validate" / "valid"  # KFP artifact paths carry no suffix
        valid.parent.mkdir()
        events.write_parquet(valid)
        cfg = {**store, "project": f"{store.get('project', 'suite')}_{next(_projects)}"}
        repo = str(tmp_path / "apply" / "repo")
        apply_repo("demo", repo, {"store": cfg, "source_paths": {"events": str(valid)}})
        report = materialize(repo, str(tmp_path / "materialize" / "report"), {"mode": "incremental",
                                                                               "end": "2026-02-01"})
        assert report.entities == events["entity_id"].n_unique() and report.rows == 2 * report.entities
        out = tmp_path / "train" / "dataset"
        result = build_training_set(repo, str(valid), str(out), {"feature_service": "training"})
        train = pl.read_parquet(out)
        assert result.rows == train.height == events.height  # every label row, duplicates included
        assert train["label"].to_list() == events["label"].to_list()
        # Point in time: the latest feature row at or before each event is the event's own row.
        assert (train["amount"] == events["amount"]).all() and (train["country"] == events["country"]).all()
        check = online_check(repo, str(valid), None, {"sample_size": 30})
        assert check.coverage == 1.0


class TestEmbedded(FeatureSuite):
    """SQLite online store, file registry; file and duckdb offline stores."""

    @pytest.fixture(params=["file", "duckdb"])
    def store(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        return {"offline": request.param, "project": f"emb_{request.param}"}
