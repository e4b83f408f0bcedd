"""Secrets: where a password comes from (an environment variable or a mounted file, never a literal value), and
PostgreSQL URLs built from a password-less URL plus such a reference.

A config declares ``password: SecretRef = Field(default_factory=SecretRef, ...)``, validates its URL with
:func:`check_postgres_url` and, where it connects, calls ``postgres_url(cfg.url, cfg.password)``. The password
is URL-quoted into the result and appears nowhere else: log or report :func:`redact` of a URL, never the URL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from pydantic import Field, model_validator

from components._core.config import ConfigError, StrictConfig

POSTGRES_SCHEMES = ("postgresql", "postgresql+psycopg", "postgresql+psycopg2")
DEFAULT_DRIVER = "postgresql+psycopg"  # what a bare postgresql:// becomes (psycopg 3 is what the images ship)
REDACTED = "***"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class SecretRef(StrictConfig):
    """Where a password comes from: an environment variable or a mounted file, never a literal value.

    Neither given: no password (e.g. trust authentication)."""

    env: str | None = Field(None, pattern=_ENV_NAME.pattern, description="environment variable holding the password")
    file: str | None = Field(None, min_length=1, max_length=4096,
                             description="path of a mounted secret file holding the password")

    @model_validator(mode="before")
    @classmethod
    def _hide_values(cls, data: Any) -> Any:
        """Validation errors echo their input: a bare value, values of unknown keys and a malformed ``env`` (a
        password put in the wrong place) are replaced by ``***`` first; validation still fails on them."""
        if isinstance(data, SecretRef) or data is None:
            return data
        if not isinstance(data, dict):
            return {"value": REDACTED}
        return {k: v if v is None or k == "file" or (k == "env" and isinstance(v, str) and _ENV_NAME.match(v))
                else REDACTED for k, v in data.items()}

    @model_validator(mode="after")
    def _one(self) -> SecretRef:
        if self.env and self.file:
            raise ValueError("give either env or file, not both")
        return self

    @property
    def configured(self) -> bool:
        """Whether a source is named."""
        return bool(self.env or self.file)

    def resolve(self, env: Mapping[str, str] | None = None) -> str | None:
        """The password (a file's trailing newline removed), or ``None`` when no source is named.

        Fails with ``ConfigError`` naming the source when it is missing, unreadable or empty. ``env`` defaults
        to ``os.environ``."""
        if self.env:
            environ = os.environ if env is None else env
            if self.env not in environ:
                raise ConfigError(f"secret environment variable {self.env} is not set")
            value = environ[self.env]
            where = f"secret environment variable {self.env}"
        elif self.file:
            path = Path(self.file)
            if not path.is_file():
                raise ConfigError(f"secret file {self.file} does not exist")
            try:
                value = path.read_text().rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as err:
                raise ConfigError(f"secret file {self.file} cannot be read: {type(err).__name__}") from None
            where = f"secret file {self.file}"
        else:
            return None
        if not value:
            raise ConfigError(f"{where} is empty")
        return value


def check_postgres_url(url: str) -> str:
    """``url`` if it is a PostgreSQL URL without a password that names a host and a database; else ``ValueError``
    saying what is wrong (for pydantic field validators)."""
    parts = urlsplit(url)
    if parts.scheme not in POSTGRES_SCHEMES:
        raise ValueError(f"scheme {parts.scheme!r} is not supported; use one of {list(POSTGRES_SCHEMES)}")
    if parts.password is not None or any(k == "password" for k, _ in parse_qsl(parts.query)):
        raise ValueError("must not carry a password; name its source with a SecretRef (env or file)")
    if not parts.hostname or not parts.path.strip("/"):
        raise ValueError("must name a host and a database: postgresql://user@host:port/database")
    try:
        parts.port  # noqa: B018  (parsing the port is the check)
    except ValueError as err:
        raise ValueError(f"bad port: {err}") from None
    return url


def postgres_url(url: str, password: SecretRef | None = None, *, query: Mapping[str, str] | None = None,
                 env: Mapping[str, str] | None = None) -> str:
    """An SQLAlchemy URL for ``url`` (validated by :func:`check_postgres_url`) with the password from
    ``password`` URL-quoted in, and ``query`` parameters added; a bare ``postgresql://`` gets the psycopg 3
    driver. No password source: the URL as given (plus ``query``)."""
    secret = password.resolve(env) if password is not None else None
    return _compose(url, None if secret is None else quote(secret, safe=""), query)


def postgres_url_template(url: str, variable: str, *, query: Mapping[str, str] | None = None) -> str:
    """:func:`postgres_url` with ``${variable}`` in place of the password, for files that expand environment
    variables when loaded (Feast's ``feature_store.yaml``)."""
    return _compose(url, f"${{{variable}}}", query)


def _compose(url: str, password: str | None, query: Mapping[str, str] | None) -> str:
    try:
        check_postgres_url(url)
    except ValueError as err:
        raise ConfigError(f"PostgreSQL URL {redact(url)}: {err}") from None
    parts = urlsplit(url)
    scheme = DEFAULT_DRIVER if parts.scheme == "postgresql" else parts.scheme
    user = unquote(parts.username or "postgres")
    auth = quote(user, safe="") + (f":{password}" if password is not None else "") + "@"
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    params = [*parse_qsl(parts.query, keep_blank_values=True), *sorted((query or {}).items())]
    return f"{scheme}://{auth}{host}{port}{parts.path}" + (f"?{urlencode(params)}" if params else "")


def redact(url: str) -> str:
    """``url`` with any password (user-info or ``password=`` query parameter) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not parseable as a URL: show nothing of it
        return "<unparseable URL>"
    if parts.password is not None:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        url = url.replace(f"//{userinfo}@", f"//{userinfo.split(':', 1)[0]}:{REDACTED}@", 1)
    return re.sub(r"([?&]password=)[^&#]*", rf"\g<1>{REDACTED}", url)
