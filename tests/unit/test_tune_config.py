"""The tuning step's configuration: where the study lives (SQLite by default; PostgreSQL by a password-less URL and
a password from an environment variable or a mounted file, URL-quoted), the engine and the study name."""

from __future__ import annotations

from pathlib import Path

import pytest

from components._core.config import ConfigError
from components.tuning.config import StorageConfig, TuneConfig
from components.tuning.samplers import TuningError
from components.tuning.step import tune_step
from tests.unit.test_tune_step_kubeflow import SPEC, TRAINER

PG = "postgresql+psycopg://tuner@db.ns.svc:5432/optuna"


def test_the_default_storage_is_sqlite_in_the_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert StorageConfig().resolve(str(out)) == f"sqlite:///{out}/study.db" and out.is_dir()
    assert StorageConfig(url="sqlite:////data/s.db").resolve(str(out)) == "sqlite:////data/s.db"
    with pytest.raises(TuningError, match="needs a local output folder"):
        StorageConfig().resolve("gs://bucket/run")


def test_a_postgresql_password_comes_from_an_environment_variable_url_quoted(tmp_path: Path) -> None:
    cfg = StorageConfig.parse({"url": PG, "password": {"env": "TUNING_DB_PASSWORD"}})
    assert cfg.resolve(str(tmp_path), env={"TUNING_DB_PASSWORD": "s3cr/t@:%"}) == \
        "postgresql+psycopg://tuner:s3cr%2Ft%40%3A%25@db.ns.svc:5432/optuna"
    with pytest.raises(ConfigError, match="secret environment variable TUNING_DB_PASSWORD is not set"):
        cfg.resolve(str(tmp_path), env={})
    with pytest.raises(ConfigError, match="TUNING_DB_PASSWORD is empty"):
        cfg.resolve(str(tmp_path), env={"TUNING_DB_PASSWORD": ""})


def test_a_postgresql_password_comes_from_a_mounted_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from file#1\n")
    cfg = StorageConfig.parse({"url": "postgresql://tuner@db:5432/optuna", "password": {"file": str(secret)}})
    # a bare postgresql:// gets the psycopg 3 driver; the file's newline is not part of the password
    assert cfg.resolve(str(tmp_path), env={"IGNORED": "x"}) == "postgresql+psycopg://tuner:from%20file%231@db:5432/optuna"
    missing = StorageConfig.parse({"url": PG, "password": {"file": str(tmp_path / "nope")}})
    with pytest.raises(ConfigError, match=r"secret file .*nope does not exist"):
        missing.resolve(str(tmp_path))


def test_no_password_source_means_no_password() -> None:
    assert StorageConfig(url=PG).resolve("/unused", env={"TUNING_DB_PASSWORD": "ignored"}) == PG


@pytest.mark.parametrize("raw,field,message", [
    ({"url": "postgresql://tuner:hunter2@db/optuna"}, "url", "must not carry a password"),
    ({"url": "postgresql://tuner@db/optuna?password=hunter2"}, "url", "must not carry a password"),
    ({"url": "mysql://tuner@db/optuna"}, "url", "scheme 'mysql' is not supported"),
    ({"url": "postgresql://tuner@db"}, "url", "must name a host and a database"),
    ({"url": "sqlite://"}, "url", "scheme 'sqlite' is not supported"),
    ({"url": PG, "password": {"env": "NOT-AN-ENV"}}, "password.env", "should match pattern"),
    ({"url": PG, "password": {"env": "A", "file": "/b"}}, "password", "either env or file, not both"),
    ({"url": PG, "password": "hunter2"}, "password", ""),
    ({"url": PG, "password_env": "X"}, "password_env", "Extra inputs are not permitted"),
])
def test_bad_storage_configs_fail_naming_the_field(raw: dict, field: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"StorageConfig\.{field}[.\w]*: .*{message}") as err:
        StorageConfig.parse(raw)
    assert "hunter2" not in str(err.value)  # the message lands in the step's log: a misplaced password is hidden


def test_tune_config_fields() -> None:
    cfg = TuneConfig.parse('{"engine": "katib", "timeout_s": 600, "study_name": "my-study", '
                           '"storage": {"url": "postgresql://u@h/d", "password": {"env": "P"}}}')
    assert cfg.engine == "katib" and cfg.timeout_s == 600 and cfg.storage.password.env == "P"
    assert TuneConfig.parse("{}") == TuneConfig(engine="optuna", timeout_s=6 * 3600, study_name="")
    for bad, field in (({"engine": "hyperopt"}, "engine"), ({"study_name": "Bad_Name"}, "study_name"),
                       ({"timeout_s": 5}, "timeout_s")):
        with pytest.raises(ConfigError, match=rf"TuneConfig\.{field}"):
            TuneConfig.parse(bad)


def test_an_unreachable_storage_fails_the_step_without_showing_the_password(tmp_path: Path) -> None:
    tune = {"storage": {"url": "postgresql://tuner@127.0.0.1:9/optuna", "password": {"env": "PW"}}}
    with pytest.raises(TuningError, match=r"cannot open tuning storage postgresql\+psycopg://tuner:\*\*\*@127\.0\.0"
                                          r"\.1:9/optuna") as err:
        tune_step("d.parquet", output_dir=str(tmp_path / "run"), spec=SPEC, trainer_config=TRAINER,
                  launch={"backend": "local"}, tune=tune, run_id="r", task="t", env={"PW": "hunter2"})
    assert "hunter2" not in str(err.value) and not (tmp_path / "run" / "study.db").exists()
