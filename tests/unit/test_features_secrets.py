"""components/_core/secrets: SecretRef sources, the PostgreSQL URL builder (password quoted in, never shown) and
redact. Named test_features_* because the feature family was its first user; tuning shares it."""

from __future__ import annotations

from pathlib import Path

import pytest

from components._core.config import ConfigError, StrictConfig
from components._core.secrets import (
    SecretRef,
    check_postgres_url,
    postgres_url,
    postgres_url_template,
    redact,
)

NASTY = "p@ss/w:rd%?#&="


class Storage(StrictConfig):
    """How a config declares a password (as tuning's StorageConfig will)."""

    url: str = "postgresql://tuner@db.internal:5432/optuna"
    password: SecretRef = SecretRef()


def test_env_and_file_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PG_PW", NASTY)
    assert SecretRef(env="PG_PW").resolve() == NASTY
    assert SecretRef(env="PG_PW").resolve(env={"PG_PW": "injected"}) == "injected"
    secret = tmp_path / "password"
    secret.write_text(NASTY + "\n")  # a mounted Kubernetes Secret often ends with a newline
    assert SecretRef(file=str(secret)).resolve() == NASTY
    assert SecretRef().resolve() is None and not SecretRef().configured and SecretRef(env="X").configured


@pytest.mark.parametrize("ref,message", [
    ({"env": "ABSENT_PW"}, "secret environment variable ABSENT_PW is not set"),
    ({"env": "EMPTY_PW"}, "secret environment variable EMPTY_PW is empty"),
    ({"file": "/nonexistent/secret"}, "secret file /nonexistent/secret does not exist"),
])
def test_a_missing_or_empty_source_fails_naming_it(ref: dict, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ABSENT_PW", raising=False)
    monkeypatch.setenv("EMPTY_PW", "")
    with pytest.raises(ConfigError, match=message):
        SecretRef.parse(ref).resolve()


@pytest.mark.parametrize("ref,field", [
    ({"env": "A", "file": "/x"}, r": Value error, give either env or file"),
    ({"env": "hunter-2"}, r"\.env"),
    ({"value": "hunter-2"}, r"\.value"),  # there is no way to give the password itself
    ("hunter-2", r"\.value"),
])
def test_bad_references_fail_naming_the_field_without_echoing_a_password(ref: dict | str, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"Storage\.password{field}") as err:
        Storage.parse({"password": ref})
    assert "hunter" not in str(err.value)


def test_a_config_declares_a_secret_ref_and_a_step_builds_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = Storage.parse({"password": {"env": "PG_PW"}})
    monkeypatch.setenv("PG_PW", NASTY)
    url = postgres_url(cfg.url, cfg.password)
    assert url == "postgresql+psycopg://tuner:p%40ss%2Fw%3Ard%25%3F%23%26%3D@db.internal:5432/optuna"
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    assert parsed.password == NASTY and parsed.username == "tuner" and parsed.database == "optuna"
    assert NASTY not in redact(url) and "%40" not in redact(url) and "***" in redact(url)


def test_url_driver_query_and_no_password() -> None:
    assert postgres_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"  # psycopg 3 driver
    assert postgres_url("postgresql+psycopg2://u@h:6432/db") == "postgresql+psycopg2://u@h:6432/db"
    assert postgres_url("postgresql://u@[::1]:5432/db?application_name=x", query={"sslmode": "disable"}) \
        == "postgresql+psycopg://u@[::1]:5432/db?application_name=x&sslmode=disable"
    assert postgres_url("postgresql://h/db") == "postgresql+psycopg://postgres@h/db"
    assert postgres_url_template("postgresql://u@h/db", "PW_VAR") == "postgresql+psycopg://u:${PW_VAR}@h/db"


@pytest.mark.parametrize("url,message", [
    ("mysql://u@h/db", "scheme 'mysql' is not supported"),
    ("postgresql://u:secret-value@h/db", "must not carry a password"),
    ("postgresql://u@h/db?password=secret-value", "must not carry a password"),
    ("postgresql://u@h", "must name a host and a database"),
    ("postgresql://u@h:99999/db", "bad port"),
])
def test_bad_urls_fail_without_showing_a_password(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_postgres_url(url)
    with pytest.raises(ConfigError, match=message) as err:
        postgres_url(url)
    assert "secret-value" not in str(err.value)


def test_redact() -> None:
    assert redact("postgresql+psycopg://u:pw@h:5432/db?sslmode=require") == \
        "postgresql+psycopg://u:***@h:5432/db?sslmode=require"
    assert redact("postgresql://u@h/db?password=pw&a=1") == "postgresql://u@h/db?password=***&a=1"
    assert redact("sqlite:////tmp/study.db") == "sqlite:////tmp/study.db"
    assert redact("postgresql://u:pw@h:notaport/db") == "postgresql://u:***@h:notaport/db"
