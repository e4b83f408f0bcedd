"""The materialize / guard / retrieve suite on production stores the tests start themselves on loopback: a real
Redis online store (password from an environment variable) and a real PostgreSQL SQL registry (password from a
mounted-secret-style file, sslmode=disable on loopback)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kfp import dsl

from components._core.config import ConfigError
from components.data.events import EventsConfig, generate_events
from components.features.materialize import materialize
from components.features.repo import opened_store
from tests.component.artifacts import artifact
from tests.servers import PostgresServer, RedisServer
from tests.unit.test_features_suite import DAY, T0, FeatureSuite, online_values, three_versions

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
REDIS_ENV = "TEST_FEAST_REDIS_PASSWORD"


@pytest.fixture
def production(redis_server: RedisServer, postgres_server: PostgresServer, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    secret = tmp_path / "secrets" / "registry-password"
    secret.parent.mkdir()
    secret.write_text(postgres_server.password + "\n")
    monkeypatch.setenv(REDIS_ENV, redis_server.password)
    return {"online": "redis", "redis": redis_server.address, "redis_password": {"env": REDIS_ENV},
            "registry": "sql", "registry_url": postgres_server.url(), "registry_password": {"file": str(secret)}}


class TestRedisAndPostgres(FeatureSuite):
    """Redis online store + PostgreSQL registry, file and duckdb offline stores."""

    @pytest.fixture(params=["file", "duckdb"])
    def store(self, request: pytest.FixtureRequest, production: dict[str, Any]) -> dict[str, Any]:
        return {**production, "offline": request.param, "project": f"prod_{request.param}"}


def test_registry_lives_in_postgres_and_no_secret_reaches_a_file(
        tmp_path: Path, production: dict[str, Any], postgres_server: PostgresServer,
        redis_server: RedisServer) -> None:
    import psycopg

    repo = FeatureSuite().apply(tmp_path, {**production, "project": "where"}, three_versions(range(1, 3)))
    with opened_store(repo) as store:
        project = store.project
    with psycopg.connect(postgres_server.url(with_password=True)) as conn:
        views = conn.execute("SELECT feature_view_name FROM feature_views WHERE project_id = %s ORDER BY 1",
                             (project,)).fetchall()
    assert views == [("activity",), ("profile",)]
    assert not (Path(repo) / "state").exists()  # nothing embedded was created
    materialize(repo, str(tmp_path / "report.json"), {"start": T0, "end": T0 + 3 * DAY})
    assert redis_server.client().dbsize() >= 2
    for path in [*Path(repo).rglob("*"), tmp_path / "report.json"]:
        if path.is_file():
            text = path.read_bytes()
            assert redis_server.password.encode() not in text and postgres_server.password.encode() not in text, path


def test_wrong_or_missing_password_fails_clearly(tmp_path: Path, production: dict[str, Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    repo = FeatureSuite().apply(tmp_path, {**production, "project": "auth"}, three_versions(range(1, 3)))
    monkeypatch.delenv(REDIS_ENV)
    with pytest.raises(ConfigError, match=f"{REDIS_ENV} is not set"):
        materialize(repo, None, {"start": T0, "end": T0 + DAY})
    monkeypatch.setenv(REDIS_ENV, "wrong")
    with pytest.raises(Exception, match=r"(?i)auth|password"):
        materialize(repo, None, {"start": T0, "end": T0 + DAY})


def test_redis_keeps_newer_values_when_sqlite_would_not(tmp_path: Path, production: dict[str, Any]) -> None:
    """Feast's own Redis write also skips older rows; ours must agree with it on the same data."""
    suite = FeatureSuite()
    data = three_versions(range(1, 4))
    theirs = suite.apply(tmp_path, {**production, "project": "feast_own"}, data, "theirs")
    with opened_store(theirs) as store:
        store.materialize(T0 + DAY, T0 + 2 * DAY, feature_views=["activity"])
        store.materialize(T0, T0 + DAY, feature_views=["activity"])
    assert online_values(theirs, [1, 2, 3], ("activity:amount",))["amount"] == [102.0, 202.0, 302.0]


def _no_secret_in(paths: list[Path], *secrets: str) -> None:
    for path in paths:
        if path.is_file():
            text = path.read_bytes()
            assert not any(s.encode() in text for s in secrets), path


def test_wrappers_on_redis_and_a_postgres_registry(tmp_path: Path, production: dict[str, Any],
                                                  postgres_server: PostgresServer, redis_server: RedisServer) -> None:
    """The pipeline's way: the store config travels as a JSON parameter naming where the passwords are."""
    from tests.component.test_wrappers_features import run_all

    events = generate_events(EventsConfig(rows=200, entities=30, days=10, seed=2))
    events.write_parquet(tmp_path / "valid")
    data = artifact(dsl.Dataset, tmp_path / "valid")
    got = run_all(tmp_path / "run", data, data, repo="demo", source_name="events",
                  store_config=json.dumps({**production, "project": "wrapped"}),
                  training_config='{"feature_service": "training"}')
    meta = got["out"]["feature_store"].metadata
    assert (meta["project"], meta["online"], meta["registry"]) == ("wrapped", "redis", "sql")
    assert got["rows"] == 2 * events["entity_id"].n_unique() and got["train_rows"] == events.height
    assert got["coverage"] == 1.0 and redis_server.client().dbsize() >= events["entity_id"].n_unique()
    _no_secret_in(list((tmp_path / "run").rglob("*")), redis_server.password, postgres_server.password)


def test_a_users_feature_store_yaml_on_redis_and_postgres(tmp_path: Path, postgres_server: PostgresServer,
                                                         redis_server: RedisServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A feast init repository whose own feature_store.yaml names Redis and a SQL registry with ${VAR} passwords,
    applied unchanged with an empty store config."""
    from components.features.step import apply_step, materialize_step, online_check_step
    from tests.unit.test_features_feast_init import driver_stats, feast_init_repo, labels_from

    repo = feast_init_repo(tmp_path / "feature_repo")
    registry = postgres_server.url().replace(f"{postgres_server.user}@", f"{postgres_server.user}:${{USER_PG_PW}}@")
    (repo / "feature_store.yaml").write_text(
        "project: my_project\nprovider: local\n"
        f"online_store:\n  type: redis\n  connection_string: \"{redis_server.address},password=${{USER_REDIS_PW}}\"\n"
        f"registry:\n  registry_type: sql\n  path: \"{registry}\"\n  cache_ttl_seconds: 0\n")
    monkeypatch.setenv("USER_REDIS_PW", redis_server.password)
    monkeypatch.setenv("USER_PG_PW", postgres_server.password)
    applied = apply_step(str(repo), None, str(tmp_path / "applied"), source_name="")
    assert (applied.project, applied.online, applied.registry) == ("my_project", "redis", "sql")
    loaded = materialize_step(str(tmp_path / "applied"), str(tmp_path / "loaded"), str(tmp_path / "report.json"))
    assert loaded.rows == 2 * driver_stats(repo)["driver_id"].n_unique()
    labels_from(driver_stats(repo), tmp_path / "labels", rows=20)
    checked = online_check_step(str(tmp_path / "loaded"), str(tmp_path / "labels"), str(tmp_path / "o.json"))
    assert checked.coverage == 1.0
    _no_secret_in([*tmp_path.rglob("*")], redis_server.password, postgres_server.password)
    monkeypatch.delenv("USER_REDIS_PW")
    with pytest.raises(ConfigError, match="USER_REDIS_PW is not set"):
        online_check_step(str(tmp_path / "loaded"), str(tmp_path / "labels"), str(tmp_path / "o2.json"))
