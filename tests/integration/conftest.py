"""Shared loopback servers for integration tests: one Redis and one PostgreSQL per session, started on free
ports in temporary folders and stopped afterwards. Tests that need a clean state call ``flush()`` / ``reset()``.
A missing binary skips the dependent tests with the install hint, except under ``CATALOG_REQUIRE_SERVERS=1``
(set by ``scripts/test``, so CI fails instead of skipping)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TypeVar

import pytest

from tests.servers import PostgresServer, RedisServer, ServerUnavailable

S = TypeVar("S", RedisServer, PostgresServer)


def _serve(server: S) -> Iterator[S]:
    """Start ``server`` for the session; skip (or fail under CATALOG_REQUIRE_SERVERS=1) without its binaries."""
    try:
        server.start()
    except ServerUnavailable as err:
        if os.environ.get("CATALOG_REQUIRE_SERVERS") == "1":
            pytest.fail(f"required test server unavailable: {err}")
        pytest.skip(str(err))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A password-protected Redis on 127.0.0.1."""
    yield from _serve(RedisServer())


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster on 127.0.0.1 with a password-protected user and database ``catalog``."""
    yield from _serve(PostgresServer())
