"""The materialize / guard / retrieve suite on production stores the tests start themselves on loopback: a real
Redis online store (password from an environment variable) and a real PostgreSQL SQL registry (password from a
mounted-secret-style file, sslmode=disable on loopback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components._core.config import ConfigError
from components.features.materialize import materialize
from components.features.repo import opened_store
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
