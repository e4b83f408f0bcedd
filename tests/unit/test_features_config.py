"""Store config: validation naming the field, the pure feature_store.yaml renderer, secrets kept out of files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components._core.config import ConfigError
from components.features.config import (
    REDIS_PASSWORD_VAR,
    REGISTRY_PASSWORD_VAR,
    FeatureStoreConfig,
    render_feature_store_yaml,
    render_store_dict,
    resolve_store_dict,
)

PROD = {"online": "redis", "redis": "10.0.0.5:6379,ssl=true", "redis_password": {"env": "REDIS_PW"},
        "registry": "sql", "registry_url": "postgresql://feast@db.internal:5432/feast",
        "registry_password": {"file": "/var/run/secrets/pg/password"}}


def test_default_is_embedded_and_rendering_is_pure() -> None:
    cfg = FeatureStoreConfig()
    d = render_store_dict(cfg)
    assert d["online_store"] == {"type": "sqlite", "path": "state/online.db"}
    assert d["registry"]["registry_type"] == "file" and d["registry"]["path"] == "state/registry.db"
    assert d["offline_store"] == {"type": "file"} and d["provider"] == "local"
    assert render_feature_store_yaml(cfg) == render_feature_store_yaml(FeatureStoreConfig.parse("{}"))
    assert render_store_dict(FeatureStoreConfig(offline="duckdb", state_dir="/data/fs"))["online_store"]["path"] \
        == "/data/fs/online.db"


def test_production_render_has_placeholders_never_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret_file = tmp_path / "pg"
    secret_file.write_text("p@ss/word:1\n")
    cfg = FeatureStoreConfig.parse({**PROD, "registry_password": {"file": str(secret_file)}})
    monkeypatch.setenv("REDIS_PW", "redis-secret")
    text = render_feature_store_yaml(cfg)
    assert "redis-secret" not in text and "p@ss" not in text
    rendered = yaml.safe_load(text)
    assert rendered["online_store"]["connection_string"] == f"10.0.0.5:6379,ssl=true,password=${{{REDIS_PASSWORD_VAR}}}"
    assert rendered["registry"]["path"] == (
        f"postgresql+psycopg://feast:${{{REGISTRY_PASSWORD_VAR}}}@db.internal:5432/feast?sslmode=require")
    resolved = resolve_store_dict(cfg)
    assert resolved["online_store"]["connection_string"].endswith(",password=redis-secret")
    assert resolved["registry"]["path"] == \
        "postgresql+psycopg://feast:p%40ss%2Fword%3A1@db.internal:5432/feast?sslmode=require"


@pytest.mark.parametrize("url,mode,expected", [
    ("postgresql://u@127.0.0.1:5432/f", None, "disable"),
    ("postgresql://u@localhost/f", None, "disable"),
    ("postgresql://u@db.example.com/f", None, "require"),
    ("postgresql://u@db.example.com/f", "verify-full", "verify-full"),
    ("postgresql://u@127.0.0.1/f", "require", "require"),
])
def test_sslmode_defaults_to_disable_only_on_loopback(url: str, mode: str | None, expected: str) -> None:
    cfg = FeatureStoreConfig.parse({"registry": "sql", "registry_url": url, "registry_sslmode": mode})
    assert cfg.sslmode() == expected
    assert render_store_dict(cfg)["registry"]["path"].endswith(f"sslmode={expected}")


@pytest.mark.parametrize("bad,field", [
    ({"online": "cassandra"}, "online"),
    ({"redis": "host:6379,password=x"}, "redis"),
    ({"registry": "sql"}, "registry_url"),
    ({"registry": "sql", "registry_url": "postgresql://u:pw@h/db"}, "registry_url"),
    ({"registry": "sql", "registry_url": "postgresql://u@h/db?sslmode=disable"}, "registry_url"),
    ({"registry": "sql", "registry_url": "mysql://u@h/db"}, "registry_url"),
    ({"registry_url": "postgresql://u@h/db"}, "registry_url"),
    ({"redis_password": {"env": "lower-case"}}, "redis_password.env"),
    ({"redis_password": {"env": "A", "file": "/x"}}, "redis_password"),
    ({"project": "Bad-Name"}, "project"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_values_fail_naming_the_field(bad: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        FeatureStoreConfig.parse(bad)
    assert f"FeatureStoreConfig.{field}:" in str(err.value) or f"<root>: Value error, {field}" in str(err.value)


def test_missing_secret_source_fails_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("REDIS_PW", raising=False)
    with pytest.raises(ConfigError, match="REDIS_PW is not set"):
        resolve_store_dict(FeatureStoreConfig.parse(PROD))
    cfg = FeatureStoreConfig.parse({**PROD, "redis_password": {"file": str(tmp_path / "absent")}})
    with pytest.raises(ConfigError, match=r"secret file .*absent does not exist"):
        resolve_store_dict(cfg)
