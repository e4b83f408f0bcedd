"""Which stores a Feast feature store uses, and the ``feature_store.yaml`` rendered from that choice.

Secrets never appear in the config or in rendered files: the YAML carries ``${VAR}`` placeholders (Feast expands
environment variables when it loads ``feature_store.yaml``), and :func:`resolve_store_dict` fills them in memory
from an environment variable or a mounted secret file named in the config.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import yaml
from pydantic import Field, field_validator, model_validator

from components._core.config import ConfigError, StrictConfig

DEFAULT_STATE_DIR = "state"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
REDIS_PASSWORD_VAR = "CATALOG_FEAST_REDIS_PASSWORD"
REGISTRY_PASSWORD_VAR = "CATALOG_FEAST_REGISTRY_PASSWORD"
_ENV_NAME = r"^[A-Z_][A-Z0-9_]{0,127}$"
SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class SecretRef(StrictConfig):
    """Where a password comes from: an environment variable or a mounted file, never a literal value."""

    env: str | None = Field(None, pattern=_ENV_NAME, description="environment variable holding the password")
    file: str | None = Field(None, min_length=1, max_length=4096,
                             description="path of a mounted secret file holding the password")

    @model_validator(mode="after")
    def _one(self) -> SecretRef:
        if self.env and self.file:
            raise ValueError("give either env or file, not both")
        return self

    def resolve(self) -> str | None:
        """The password, or ``None`` when no source is configured; fails if the named source is missing."""
        if self.env:
            if self.env not in os.environ:
                raise ConfigError(f"secret environment variable {self.env} is not set")
            return os.environ[self.env]
        if self.file:
            path = Path(self.file)
            if not path.is_file():
                raise ConfigError(f"secret file {self.file} does not exist")
            return path.read_text().strip()
        return None


class FeatureStoreConfig(StrictConfig):
    """Store choices: embedded (SQLite online, file registry) by default, Redis / PostgreSQL in production."""

    project: str = Field("catalog", pattern=r"^[a-z][a-z0-9_]{0,62}$", description="Feast project name")
    online: Literal["sqlite", "redis"] = Field("sqlite", description="online store type")
    offline: Literal["file", "duckdb"] = Field("file", description="offline store type")
    registry: Literal["file", "sql"] = Field("file", description="registry type")
    state_dir: str | None = Field(
        None, max_length=4096,
        description="folder for the file registry and the SQLite online store (absolute, or relative "
                    "to the applied repository folder); default: 'state' inside it")
    redis: str = Field("127.0.0.1:6379", max_length=1024, pattern=r"^[^\s,]+:\d{1,5}(,[a-z_]+=[^\s,=]+)*$",
                       description="Redis host:port[,option=value...] without a password")
    redis_password: SecretRef = Field(default_factory=SecretRef, description="source of the Redis password")
    redis_key_ttl_seconds: int | None = Field(None, ge=1, le=10 * 365 * 86400,
                                              description="expiry of Redis keys (none: keep)")
    registry_url: str | None = Field(
        None, max_length=2048, pattern=r"^postgresql(\+psycopg)?://",
        description="PostgreSQL URL of the SQL registry, without a password: postgresql://user@host:port/db")
    registry_sslmode: SslMode | None = Field(
        None, description="sslmode of the registry connection; default 'disable' on loopback, else 'require'")
    registry_password: SecretRef = Field(default_factory=SecretRef, description="source of the registry password")
    registry_cache_ttl_seconds: int = Field(0, ge=0, le=86400,
                                            description="registry cache TTL (0: load once per process)")
    entity_key_serialization_version: int = Field(3, ge=3, le=3, description="Feast entity key format")

    @field_validator("redis")
    @classmethod
    def _no_redis_secret(cls, v: str) -> str:
        if re.search(r",(password|username)=", v):
            raise ValueError("must not carry credentials; name their source in redis_password")
        return v

    @field_validator("registry_url")
    @classmethod
    def _no_url_secret(cls, v: str | None) -> str | None:
        if v is not None:
            parts = urlsplit(v)
            if parts.password is not None or "password=" in parts.query:
                raise ValueError("must not carry a password; name its source in registry_password")
            if "sslmode=" in parts.query:
                raise ValueError("set sslmode with registry_sslmode, not in the URL")
            if not parts.hostname or not parts.path.strip("/"):
                raise ValueError("must name a host and a database")
        return v

    @model_validator(mode="after")
    def _registry_url_when_sql(self) -> FeatureStoreConfig:
        if self.registry == "sql" and not self.registry_url:
            raise ValueError("registry_url is required when registry is 'sql'")
        if self.registry == "file" and self.registry_url:
            raise ValueError("registry_url is only used when registry is 'sql'")
        return self

    def sslmode(self) -> str:
        """The effective sslmode: the configured one, else ``disable`` only on loopback."""
        if self.registry_sslmode:
            return self.registry_sslmode
        host = urlsplit(self.registry_url or "").hostname or ""
        return "disable" if host in LOOPBACK else "require"


def render_store_dict(cfg: FeatureStoreConfig) -> dict[str, Any]:
    """The ``feature_store.yaml`` content as a dict (pure): secrets appear only as ``${VAR}`` placeholders.

    Relative paths (the default ``state`` folder) resolve against the repository folder, wherever it is mounted.
    """
    state = (cfg.state_dir or DEFAULT_STATE_DIR).rstrip("/")
    online: dict[str, Any]
    if cfg.online == "sqlite":
        online = {"type": "sqlite", "path": f"{state}/online.db"}
    else:
        conn = cfg.redis + (f",password=${{{REDIS_PASSWORD_VAR}}}" if _has_secret(cfg.redis_password) else "")
        online = {"type": "redis", "connection_string": conn}
        if cfg.redis_key_ttl_seconds:
            online["key_ttl_seconds"] = cfg.redis_key_ttl_seconds
    registry: dict[str, Any]
    if cfg.registry == "file":
        registry = {"registry_type": "file", "path": f"{state}/registry.db",
                    "cache_ttl_seconds": cfg.registry_cache_ttl_seconds}
    else:
        registry = {"registry_type": "sql", "path": _registry_url(cfg, f"${{{REGISTRY_PASSWORD_VAR}}}"),
                    "cache_ttl_seconds": cfg.registry_cache_ttl_seconds,
                    "sqlalchemy_config_kwargs": {"echo": False, "pool_pre_ping": True}}
    return {
        "project": cfg.project,
        "provider": "local",
        "registry": registry,
        "online_store": online,
        "offline_store": {"type": cfg.offline},
        "entity_key_serialization_version": cfg.entity_key_serialization_version,
    }


def render_feature_store_yaml(cfg: FeatureStoreConfig) -> str:
    """``feature_store.yaml`` text (pure, deterministic)."""
    return yaml.safe_dump(render_store_dict(cfg), sort_keys=True)


def resolve_store_dict(cfg: FeatureStoreConfig) -> dict[str, Any]:
    """The rendered dict with secret placeholders replaced by the secrets themselves (in memory only)."""
    out = render_store_dict(cfg)
    if cfg.online == "redis" and _has_secret(cfg.redis_password):
        secret = cfg.redis_password.resolve() or ""
        if "," in secret:
            raise ConfigError("the Redis password must not contain ',' (Feast's connection string separator)")
        out["online_store"]["connection_string"] = out["online_store"]["connection_string"].replace(
            f"${{{REDIS_PASSWORD_VAR}}}", secret)
    if cfg.registry == "sql":
        out["registry"]["path"] = _registry_url(cfg, cfg.registry_password.resolve())
    return out


def _has_secret(ref: SecretRef) -> bool:
    return bool(ref.env or ref.file)


def _registry_url(cfg: FeatureStoreConfig, password: str | None) -> str:
    """SQLAlchemy URL (psycopg 3 driver) with the password (raw placeholder or quoted secret) and sslmode."""
    parts = urlsplit(cfg.registry_url or "")
    user = parts.username or "postgres"
    if password is not None and _has_secret(cfg.registry_password):
        secret = password if password.startswith("${") else quote(password, safe="")
        auth = f"{quote(user, safe='')}:{secret}@"
    else:
        auth = f"{quote(user, safe='')}@"
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    query = "&".join(q for q in (parts.query, f"sslmode={cfg.sslmode()}") if q)
    return f"postgresql+psycopg://{auth}{host}{port}{parts.path}?{query}"
