"""The tuning step's logic, called by its KFP wrapper: resolve the storage, run the study, write the reports,
fail the step when the experiment failed.

Storage is SQLite under the step's output folder unless ``storage.url`` names a PostgreSQL database; its password
comes from a mounted secret file or an environment variable (a Kubernetes Secret), never from a parameter.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator

from components._core.artifacts import write_json
from components._core.config import StrictConfig
from components._core.signals import on_sigterm
from components._core.waiting import Clock
from components.training.launch import LaunchSpec, TrainingBackend
from components.tuning.optuna_engine import (
    TuningError,
    TuningResult,
    default_storage_url,
    join_uri,
    redact,
    run_tuning,
)
from components.tuning.report import Renderer, write_reports
from components.tuning.spec import TuningSpec

log = logging.getLogger(__name__)

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
BEST_TRAINER_CONFIG = "best_trainer_config.json"
SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgresql+psycopg2")


class TuningFailed(RuntimeError):
    """The experiment ended without success (failed-trial limit, deadline, or no trial succeeded)."""

    def __init__(self, message: str, result: TuningResult) -> None:
        super().__init__(message)
        self.result = result


class StorageConfig(StrictConfig):
    """Where the study lives: SQLite by default, PostgreSQL by URL (the password never in the URL)."""

    url: str = Field(
        "", max_length=512,
        description="SQLAlchemy URL without password, e.g. postgresql+psycopg://tuner@db:5432/optuna; "
        "empty: SQLite file study.db in the step's output folder",
    )
    password_env: str = Field(
        "TUNING_DB_PASSWORD", pattern=ENV_NAME, max_length=128,
        description="environment variable holding the database password (from a Kubernetes Secret)",
    )
    password_file: str = Field(
        "", max_length=1024, description="mounted secret file holding the password; read before password_env"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v:
            return v
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(v)
        except ArgumentError:
            raise ValueError("not an SQLAlchemy URL (dialect+driver://user@host:port/database)") from None
        if url.drivername not in SCHEMES:
            raise ValueError(f"scheme {url.drivername!r} is not supported; use one of {list(SCHEMES)}")
        if url.password:
            raise ValueError("must not contain a password; mount it as a secret (password_file / password_env)")
        return v


class TuningStepConfig(StrictConfig):
    """Everything the tuning step needs besides the base launch and the backend."""

    spec: TuningSpec = Field(description="the Katib-style experiment spec")
    storage: StorageConfig = Field(default_factory=StorageConfig, description="study storage")
    poll_interval_s: float = Field(5.0, ge=0.01, le=600, description="seconds between polls of running trials")
    timeout_s: float | None = Field(
        None, ge=1, le=30 * 86400, description="deadline for the whole study (trials have their own)"
    )
    study_name: str = Field(
        "", max_length=128, description="study name; empty: <base launch name>-<spec digest>, so a retry resumes"
    )
    renderer: Renderer = Field("auto", description="optimization history: auto (plotly when installed), svg")


def resolve_storage_url(cfg: StorageConfig, output_dir: str, env: Mapping[str, str] | None = None) -> str:
    """The storage URL to open: the SQLite default, or ``cfg.url`` with the password from the secret file or
    environment variable set (a PostgreSQL without password, e.g. trust auth, is allowed)."""
    if not cfg.url:
        return default_storage_url(output_dir)
    if cfg.url.startswith("sqlite"):
        return cfg.url
    from sqlalchemy.engine import make_url

    env = os.environ if env is None else env
    password: str | None = None
    if cfg.password_file:
        try:
            with open(cfg.password_file) as fh:
                password = fh.read().strip()
        except OSError as err:
            raise TuningError(f"cannot read storage password file {cfg.password_file}: {err}") from None
    elif env.get(cfg.password_env):
        password = env[cfg.password_env]
    url = make_url(cfg.url)
    if password:
        url = url.set(password=password)
    return url.render_as_string(hide_password=False)


def run_step(
    config: TuningStepConfig | Mapping[str, Any] | str,
    base_launch: LaunchSpec | Mapping[str, Any],
    backend: TrainingBackend,
    output_dir: str,
    *,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> TuningResult:
    """Run the study and write ``trials.csv``, ``trials.parquet``, ``summary.json``,
    ``optimization_history.html``, ``best_params.json`` and ``best_trainer_config.json`` under ``output_dir``.
    Raises ``TuningFailed`` (after writing the reports) when the experiment did not succeed."""
    cfg = TuningStepConfig.parse(config)
    base = LaunchSpec.parse(base_launch)
    url = resolve_storage_url(cfg.storage, output_dir, env)
    log.info("tuning %s with %s on storage %s", base.name, cfg.spec.algorithm.algorithm_name, redact(url))
    with on_sigterm():  # SIGTERM raises Terminated; the engine cancels running trials
        result = run_tuning(
            cfg.spec, base, backend, output_dir=output_dir, storage_url=url, study_name=cfg.study_name or None,
            clock=clock, poll_interval_s=cfg.poll_interval_s, timeout_s=cfg.timeout_s,
        )
    paths = write_reports(result, output_dir, cfg.renderer)
    best = result.best()
    if best is not None:
        write_json(best.apply(base.trainer_config), join_uri(output_dir, BEST_TRAINER_CONFIG))
    if not result.succeeded:
        raise TuningFailed(
            f"tuning failed: {result.stop_reason.value}; counts {result.counts()}; trials table {paths['trials_csv']}",
            result,
        )
    return result
