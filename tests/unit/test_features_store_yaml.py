"""A repository's own feature_store.yaml: which keys the catalog reads, how the store config overrides them,
and what fails (naming the key). The apply-level rules (project from the yaml, a Project object, an explicit
override) run through apply_repo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.features.apply import apply_repo
from components.features.config import FeatureStoreConfig, render_store_dict, resolve_store_dict
from components.features.repo import FeatureRepoError, opened_store, store_config
from components.features.store_yaml import effective_store, repo_values
from tests.unit.test_features_apply import DEMO, user_repo
from tests.unit.test_features_suite import three_versions

FEAST_INIT_YAML = {"project": "my_project", "registry": "data/registry.db", "provider": "local",
                   "online_store": {"type": "sqlite", "path": "data/online_store.db"},
                   "entity_key_serialization_version": 3, "auth": {"type": "no_auth"}}
PROD_YAML = {
    "project": "prod", "provider": "local",
    "online_store": {"type": "redis", "connection_string": "redis.svc:6379,ssl=true,password=${REDIS_PW}",
                     "key_ttl_seconds": 3600},
    "registry": {"registry_type": "sql", "path": "postgresql+psycopg://feast:${PG_PW}@db:5432/feast?sslmode=verify-full",
                 "cache_ttl_seconds": 60},
    "offline_store": {"type": "duckdb"},
}


def effective(raw: dict[str, Any] | None, store: dict[str, Any] | None = None) -> FeatureStoreConfig:
    return effective_store(FeatureStoreConfig.parse(store or {}), raw)


def test_feast_init_settings_are_read_and_state_stays_in_the_artifact() -> None:
    cfg = effective(FEAST_INIT_YAML)
    assert (cfg.project, cfg.online, cfg.offline, cfg.registry) == ("my_project", "sqlite", "file", "file")
    rendered = render_store_dict(cfg)
    assert rendered["registry"]["path"] == "state/registry.db"  # not the repository's data/registry.db
    assert rendered["online_store"]["path"] == "state/online.db"
    assert effective(None) == FeatureStoreConfig() and effective({}).project == "catalog"


def test_production_yaml_maps_onto_the_store_config_with_passwords_as_env_refs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = effective(PROD_YAML)
    assert cfg.online == "redis" and cfg.redis == "redis.svc:6379,ssl=true" and cfg.redis_key_ttl_seconds == 3600
    assert cfg.redis_password.env == "REDIS_PW" and cfg.registry_password.env == "PG_PW"
    assert cfg.registry_url == "postgresql+psycopg://feast@db:5432/feast" and cfg.registry_sslmode == "verify-full"
    assert cfg.registry_cache_ttl_seconds == 60 and cfg.offline == "duckdb"
    monkeypatch.setenv("REDIS_PW", "r-secret")
    monkeypatch.setenv("PG_PW", "p-secret")
    resolved = resolve_store_dict(cfg)
    assert resolved["online_store"]["connection_string"] == "redis.svc:6379,ssl=true,password=r-secret"
    assert resolved["registry"]["path"] == \
        "postgresql+psycopg://feast:p-secret@db:5432/feast?sslmode=verify-full"


def test_explicit_store_config_fields_win_and_a_set_type_replaces_the_section() -> None:
    cfg = effective(PROD_YAML, {"project": "mine", "redis_key_ttl_seconds": 60})
    assert cfg.project == "mine" and cfg.redis_key_ttl_seconds == 60 and cfg.redis == "redis.svc:6379,ssl=true"
    local = effective(PROD_YAML, {"online": "sqlite", "registry": "file", "offline": "file"})
    assert (local.online, local.registry, local.offline) == ("sqlite", "file", "file")
    assert local.project == "prod" and local.registry_url is None and not local.redis_password.configured
    # An unsupported section is not read at all once the store config sets its type.
    dynamo = {**FEAST_INIT_YAML, "online_store": {"type": "dynamodb", "region": "eu-west-1"}}
    assert effective(dynamo, {"online": "sqlite"}).online == "sqlite"
    with pytest.raises(FeatureRepoError, match="online_store type 'dynamodb' is not supported"):
        effective(dynamo)


@pytest.mark.parametrize("raw,message", [
    ({"batch_engine": "local"}, "key 'batch_engine' is not supported by the catalog"),
    ({"provider": "gcp"}, "provider 'gcp' is not supported"),
    ({"auth": {"type": "kubernetes"}}, "auth .* is not supported; only no_auth"),
    ({"offline_store": {"type": "bigquery"}}, "offline_store type 'bigquery' is not supported"),
    ({"offline_store": {"type": "duckdb", "staging": "x"}}, r"offline_store\.staging is not supported"),
    ({"online_store": {"type": "sqlite", "vector_enabled": True}}, r"online_store\.vector_enabled is not supported"),
    ({"online_store": {"type": "redis", "redis_type": "redis_cluster"}}, "redis_type 'redis_cluster'"),
    ({"online_store": {"type": "redis", "connection_string": "h:6379,password=hunter2"}},
     "connection_string carries a literal password"),
    ({"registry": {"registry_type": "sql", "path": "postgresql://u:hunter2@h/db"}},
     r"registry\.path carries a literal password"),
    ({"registry": {"registry_type": "remote", "path": "grpc://h:1"}}, "registry type 'remote' is not supported"),
    ({"registry": {"path": "r.db", "cache_mode": "thread"}}, r"registry\.cache_mode is not supported"),
    ({"entity_key_serialization_version": 2}, "entity_key_serialization_version"),
    ({"project": "has-dash"}, "FeatureStoreConfig.project"),
])
def test_what_the_catalog_cannot_honour_fails_naming_the_key(raw: dict, message: str) -> None:
    with pytest.raises(FeatureRepoError, match=message) as err:
        effective({**FEAST_INIT_YAML, **raw})
    assert "hunter2" not in str(err.value)


def test_repo_values_skips_sections() -> None:
    assert repo_values(PROD_YAML, skip={"online_store", "registry"}) == {"project": "prod", "offline": "duckdb"}


# -- through apply_repo ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("data") / "events.parquet"
    three_versions(range(1, 4)).write_parquet(path)
    return str(path)


def yaml_repo(tmp_path: Path, yaml_text: str | None, definitions: str = DEMO) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return user_repo(tmp_path, definitions, {"feature_store.yaml": yaml_text} if yaml_text is not None else None)


def test_apply_takes_the_project_and_offline_store_from_the_repository(tmp_path: Path, events: str) -> None:
    repo = yaml_repo(tmp_path, "project: my_project\nprovider: local\noffline_store:\n  type: duckdb\n")
    result = apply_repo(str(repo), str(tmp_path / "out"), {"source_paths": {"events": events}})
    assert (result.project, result.offline) == ("my_project", "duckdb")
    assert store_config(tmp_path / "out").project == "my_project"
    with opened_store(tmp_path / "out") as store:
        assert store.project == "my_project" and store.config.offline_store.type == "duckdb"
    assert "project: my_project" in (repo / "feature_store.yaml").read_text()  # the source is untouched


def test_project_object_without_a_yaml_names_the_project(tmp_path: Path, events: str) -> None:
    repo = yaml_repo(tmp_path, None, DEMO + "\nfrom feast import Project\nproject = Project(name='theirs')\n")
    assert apply_repo(str(repo), str(tmp_path / "out"), {"source_paths": {"events": events}}).project == "theirs"


def test_project_object_disagreeing_with_the_yaml_fails(tmp_path: Path, events: str) -> None:
    repo = yaml_repo(tmp_path, "project: one\n", DEMO + "\nfrom feast import Project\nproject = Project(name='two')\n")
    with pytest.raises(FeatureRepoError, match=r"defines project 'two' but its feature_store\.yaml says 'one'"):
        apply_repo(str(repo), str(tmp_path / "out"), {"source_paths": {"events": events}})
    assert not (tmp_path / "out").exists()


def test_explicit_project_overrides_the_yaml_and_renames_the_project_object(tmp_path: Path, events: str) -> None:
    definitions = DEMO + "\nfrom feast import Project\nproject = Project(name='mine', description='d')\n"
    repo = yaml_repo(tmp_path, "project: mine\n", definitions)
    result = apply_repo(str(repo), str(tmp_path / "out"),
                        {"store": {"project": "staging"}, "source_paths": {"events": events}})
    assert result.project == "staging"
    with opened_store(tmp_path / "out") as store:
        assert [p.name for p in store.list_projects()] == ["staging"]
        assert store.get_project("staging").description == "d"
        assert sorted(v.name for v in store.list_feature_views()) == ["activity", "profile"]


def test_a_bad_yaml_fails_before_anything_is_written(tmp_path: Path, events: str) -> None:
    repo = yaml_repo(tmp_path, "project: [unclosed\n")
    with pytest.raises(FeatureRepoError, match=r"feature_store\.yaml of the repository is not valid YAML"):
        apply_repo(str(repo), str(tmp_path / "out"), {"source_paths": {"events": events}})
    repo2 = yaml_repo(tmp_path / "b", "project: p\nonline_store:\n  type: redis\n  connection_string: h:1,password=x\n")
    with pytest.raises(FeatureRepoError, match="literal password"):
        apply_repo(str(repo2), str(tmp_path / "out"), {"source_paths": {"events": events}})
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".tmp-*"))
