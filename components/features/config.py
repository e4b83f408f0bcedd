"""Which stores a Feast feature store uses, and the ``feature_store.yaml`` rendered from that choice.

Secrets never appear in the config or in rendered files: the YAML carries ``${VAR}`` placeholders (Feast expands
environment variables when it loads ``feature_store.yaml``), and :func:`resolve_store_dict` fills them in memory
from an environment variable or a mounted secret file named in the config.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import Field, field_validator, model_validator

from components._core.config import ConfigError, StrictConfig
from components._core.secrets import SecretRef, check_postgres_url, postgres_url, postgres_url_template

DEFAULT_STATE_DIR = "state"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
REDIS_PASSWORD_VAR = "CATALOG_FEAST_REDIS_PASSWORD"
REGISTRY_PASSWORD_VAR = "CATALOG_FEAST_REGISTRY_PASSWORD"
SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class FeatureStoreConfig(StrictConfig):
    """Store choices: embedded (SQLite online, file registry) by default, Redis / PostgreSQL in production.

    Fields not given explicitly may come from the repository's own ``feature_store.yaml`` (see ``store_yaml``)."""

    project: str = Field("catalog", pattern=r"^[A-Za-z0-9][A-Za-z0-9_]{0,62}$",
                         description="Feast project name; default: the repository's (its feature_store.yaml or "
                                     "Project object), else 'catalog'")
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
            check_postgres_url(v)
            if "sslmode=" in urlsplit(v).query:
                raise ValueError("set sslmode with registry_sslmode, not in the URL")
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
        conn = cfg.redis + (f",password=${{{REDIS_PASSWORD_VAR}}}" if cfg.redis_password.configured else "")
        online = {"type": "redis", "connection_string": conn}
        if cfg.redis_key_ttl_seconds:
            online["key_ttl_seconds"] = cfg.redis_key_ttl_seconds
    registry: dict[str, Any]
    if cfg.registry == "file":
        registry = {"registry_type": "file", "path": f"{state}/registry.db",
                    "cache_ttl_seconds": cfg.registry_cache_ttl_seconds}
    else:
        url = cfg.registry_url or ""
        path = (postgres_url_template(url, REGISTRY_PASSWORD_VAR, query=_sslmode(cfg))
                if cfg.registry_password.configured else postgres_url(url, query=_sslmode(cfg)))
        registry = {"registry_type": "sql", "path": path,
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
    if cfg.online == "redis" and cfg.redis_password.configured:
        secret = cfg.redis_password.resolve() or ""
        if "," in secret:
            raise ConfigError("the Redis password must not contain ',' (Feast's connection string separator)")
        out["online_store"]["connection_string"] = out["online_store"]["connection_string"].replace(
            f"${{{REDIS_PASSWORD_VAR}}}", secret)
    if cfg.registry == "sql":
        out["registry"]["path"] = postgres_url(cfg.registry_url or "", cfg.registry_password, query=_sslmode(cfg))
    return out


def _sslmode(cfg: FeatureStoreConfig) -> dict[str, str]:
    return {"sslmode": cfg.sslmode()}
