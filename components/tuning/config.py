"""The tuning step's configuration: which engine runs the experiment, where the Optuna study lives, and the
experiment's deadline. The experiment itself is the ``TuningSpec``; how trials launch is the ``LaunchConfig``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from components._core.config import StrictConfig
from components._core.secrets import SecretRef, check_postgres_url, postgres_url, redact
from components.tuning.storage import default_storage_url


class StorageConfig(StrictConfig):
    """Where the study lives: SQLite in the step's output folder by default, or PostgreSQL by URL (its password
    never in the URL: from a mounted secret file or an environment variable, e.g. a Kubernetes Secret)."""

    url: str = Field(
        "", max_length=512,
        description="empty: SQLite study.db in the step's output folder; sqlite:///PATH; or a PostgreSQL URL "
                    "without password, e.g. postgresql+psycopg://tuner@db:5432/optuna")
    password: SecretRef = Field(default_factory=SecretRef,
                                description="source of the PostgreSQL password (env or file); none: no password")

    @model_validator(mode="before")
    @classmethod
    def _hide_url_password(cls, data: Any) -> Any:
        """Validation errors echo their input (into the step's log): a password put in the URL is replaced by
        ``***`` first, and the URL is still rejected for carrying one."""
        if isinstance(data, Mapping) and isinstance(data.get("url"), str):
            return {**data, "url": redact(data["url"])}
        return data

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return v if not v or v.startswith("sqlite:///") else check_postgres_url(v)

    def resolve(self, output_dir: str, env: Mapping[str, str] | None = None) -> str:
        """The SQLAlchemy URL to open (with the password resolved in memory; never log it)."""
        if not self.url:
            return default_storage_url(output_dir)
        if self.url.startswith("sqlite"):
            return self.url
        return postgres_url(self.url, self.password, env=env)


class TuneConfig(StrictConfig):
    """Engine, storage and deadline of the tuning step."""

    engine: Literal["optuna", "katib"] = Field("optuna", description="optuna in the step, or a Katib Experiment")
    storage: StorageConfig = Field(default_factory=StorageConfig, description="Optuna study storage")
    timeout_s: int = Field(6 * 3600, ge=60, le=14 * 86400, description="deadline for the whole experiment")
    study_name: str = Field("", max_length=100, pattern=r"^([a-z][-a-z0-9]*)?$",
                            description="study name; empty: <step name>-<spec digest>, so a retry resumes it")
