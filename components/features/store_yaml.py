"""A repository's own ``feature_store.yaml``: the store settings the catalog takes from it.

Each field of the component's store config (``FeatureStoreConfig``) comes from, in this order:

1. the store config, when the field is given there explicitly (a key of its JSON);
2. the repository's ``feature_store.yaml``:

   ==================================================  ============================================
   ``project``                                         ``project``
   ``offline_store`` (``file``/``dask``, ``duckdb``)   ``offline``
   ``online_store.type`` (``sqlite``, ``redis``)       ``online``
   ``online_store.connection_string`` (redis)          ``redis``; ``password=${VAR}`` -> ``redis_password``
   ``online_store.key_ttl_seconds`` (redis)            ``redis_key_ttl_seconds``
   ``registry.registry_type`` (``file``, ``sql``)      ``registry``
   ``registry.path`` (sql)                             ``registry_url``; ``:${VAR}@`` -> ``registry_password``;
                                                       ``?sslmode=`` -> ``registry_sslmode``
   ``registry.cache_ttl_seconds``                      ``registry_cache_ttl_seconds``
   ``entity_key_serialization_version``                ``entity_key_serialization_version``
   ==================================================  ============================================

3. the catalog's default.

A store config that sets ``offline``, ``online`` or ``registry`` replaces that whole section of the file (its
other keys are not read). Where embedded state lives is the catalog's choice, so that an applied store travels as
one artifact: the file registry's path and the SQLite ``online_store.path`` are not used (``state_dir`` is).
``provider`` must be ``local`` and ``auth`` ``no_auth``; ``project_description`` is not used. Any other key, a
type the catalog does not run, or a literal password (passwords come only as ``${VAR}``) fails naming the key.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import yaml

from components._core.config import ConfigError
from components.features.config import FeatureStoreConfig
from components.features.repo import FeatureRepoError

FILE = "feature_store.yaml"
_VAR = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_SECTIONS = {"offline_store": "offline", "online_store": "online", "registry": "registry"}
_TOP = {"project", "offline_store", "online_store", "registry", "entity_key_serialization_version", "provider",
        "auth", "project_description"}


def read_store_yaml(repo_dir: Path) -> dict[str, Any] | None:
    """The repository's ``feature_store.yaml`` as written (environment variables not expanded), or ``None``."""
    path = repo_dir / FILE
    if not path.is_file():
        return None
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise FeatureRepoError(f"{FILE} of the repository is not valid YAML: {err}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise FeatureRepoError(f"{FILE} of the repository must be a mapping, got {type(raw).__name__}")
    return raw


def effective_store(store: FeatureStoreConfig, raw: dict[str, Any] | None) -> FeatureStoreConfig:
    """``store``'s explicitly given fields over the values read from ``raw`` (a ``feature_store.yaml``)."""
    explicit = store.model_dump(include=store.model_fields_set)
    if not raw:
        return store
    values = repo_values(raw, skip={s for s, f in _SECTIONS.items() if f in explicit})
    try:
        FeatureStoreConfig.parse(values)
    except ConfigError as err:
        raise FeatureRepoError(f"{FILE} of the repository sets values the catalog cannot use: {err}") from None
    return FeatureStoreConfig.parse({**values, **explicit})


def repo_values(raw: dict[str, Any], skip: Collection[str] = ()) -> dict[str, Any]:
    """``FeatureStoreConfig`` field values from a ``feature_store.yaml`` mapping; sections in ``skip`` unread."""
    unknown = sorted(set(raw) - _TOP)
    if unknown:
        raise FeatureRepoError(f"{FILE}: key {unknown[0]!r} is not supported by the catalog (it reads "
                               f"{sorted(_TOP)}); remove it")
    if raw.get("provider", "local") != "local":
        raise FeatureRepoError(f"{FILE}: provider {raw['provider']!r} is not supported; the catalog runs Feast's "
                               "local provider")
    auth = raw.get("auth") or {}
    if not isinstance(auth, dict) or auth.get("type", "no_auth") != "no_auth" or set(auth) - {"type"}:
        raise FeatureRepoError(f"{FILE}: auth {auth!r} is not supported; only no_auth")
    out: dict[str, Any] = {k: raw[k] for k in ("project", "entity_key_serialization_version") if k in raw}
    if "offline_store" in raw and "offline_store" not in skip:
        out.update(_offline(raw["offline_store"]))
    if "online_store" in raw and "online_store" not in skip:
        out.update(_online(raw["online_store"]))
    if "registry" in raw and "registry" not in skip:
        out.update(_registry(raw["registry"]))
    return out


def _section(value: Any, key: str, allowed: set[str], type_key: str = "type") -> dict[str, Any]:
    section = {type_key: value} if isinstance(value, str) else value
    if not isinstance(section, dict):
        raise FeatureRepoError(f"{FILE}: {key} must be a mapping or a type name, got {value!r}")
    extra = sorted(set(section) - allowed)
    if extra:
        raise FeatureRepoError(f"{FILE}: {key}.{extra[0]} is not supported by the catalog (it reads "
                               f"{sorted(allowed)} there); remove it or set {_SECTIONS[key]!r} in the store config")
    return section


def _unsupported(key: str, kind: Any, supported: list[str]) -> FeatureRepoError:
    return FeatureRepoError(f"{FILE}: {key} type {kind!r} is not supported by the catalog ({', '.join(supported)}); "
                            f"set {_SECTIONS[key]!r} in the store config to use another store")


def _offline(value: Any) -> dict[str, Any]:
    kind = _section(value, "offline_store", {"type"}).get("type", "dask")
    if kind not in ("file", "dask", "duckdb"):
        raise _unsupported("offline_store", kind, ["file", "dask", "duckdb"])
    return {"offline": "duckdb" if kind == "duckdb" else "file"}


def _online(value: Any) -> dict[str, Any]:
    kind = (value if isinstance(value, str) else value.get("type", "sqlite") if isinstance(value, dict) else None)
    if kind == "sqlite":
        _section(value, "online_store", {"type", "path"})
        return {"online": "sqlite"}
    if kind != "redis":
        raise _unsupported("online_store", kind, ["sqlite", "redis"])
    section = _section(value, "online_store", {"type", "connection_string", "key_ttl_seconds", "redis_type"})
    if section.get("redis_type", "redis") != "redis":
        raise FeatureRepoError(f"{FILE}: online_store.redis_type {section['redis_type']!r} is not supported "
                               "(only 'redis'); set 'online' in the store config to use another store")
    out: dict[str, Any] = {"online": "redis"}
    if "key_ttl_seconds" in section:
        out["redis_key_ttl_seconds"] = section["key_ttl_seconds"]
    options = []
    for part in str(section.get("connection_string", "localhost:6379")).split(","):
        name, _, secret = part.partition("=")
        if name != "password":
            options.append(part)
            continue
        var = _VAR.match(secret.strip())
        if var is None:
            raise FeatureRepoError(f"{FILE}: online_store.connection_string carries a literal password; write "
                                   "password=${VAR} (an environment variable) or set redis_password in the store "
                                   "config")
        out["redis_password"] = {"env": var.group(1)}
    out["redis"] = ",".join(options)
    return out


def _registry(value: Any) -> dict[str, Any]:
    section = _section(value, "registry", {"registry_type", "path", "cache_ttl_seconds"}, type_key="path")
    out: dict[str, Any] = {}
    if "cache_ttl_seconds" in section:
        out["registry_cache_ttl_seconds"] = section["cache_ttl_seconds"]
    kind = section.get("registry_type", "file")
    if kind == "file":
        return {"registry": "file", **out}
    if kind != "sql":
        raise _unsupported("registry", kind, ["file", "sql"])
    parts = urlsplit(str(section.get("path", "")))
    if parts.password is not None:
        var = _VAR.match(parts.password)
        if var is None:
            raise FeatureRepoError(f"{FILE}: registry.path carries a literal password; write user:${{VAR}}@ (an "
                                   "environment variable) or set registry_password in the store config")
        out["registry_password"] = {"env": var.group(1)}
        parts = parts._replace(netloc=f"{parts.username}@{parts.netloc.rsplit('@', 1)[1]}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    for name, mode in query:
        if name == "sslmode":
            out["registry_sslmode"] = mode
    parts = parts._replace(query=urlencode([(k, v) for k, v in query if k != "sslmode"]))
    return {"registry": "sql", "registry_url": parts.geturl(), **out}
