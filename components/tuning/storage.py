"""Where an Optuna study lives: SQLite under the step's output folder by default, or PostgreSQL."""

from __future__ import annotations

import os
from typing import Any

from optuna.storages import RDBStorage

from components._core.artifacts import is_local, local_path
from components._core.secrets import redact
from components.tuning.samplers import TuningError


def default_storage_url(output_dir: str) -> str:
    """SQLite database file under the step's (local) output folder."""
    if not is_local(output_dir):
        raise TuningError(f"the default SQLite storage needs a local output folder, got {output_dir!r}; "
                          "configure a PostgreSQL storage instead")
    path = os.path.abspath(os.path.join(local_path(output_dir), "study.db"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return f"sqlite:///{path}"


def open_storage(url: str) -> RDBStorage:
    """An Optuna RDB storage for an SQLAlchemy URL (``sqlite:///...``, ``postgresql+psycopg://...``).

    SQLite runs in WAL mode with ``synchronous=NORMAL``: a commit no longer waits for a disk flush (12 ms each
    on the machines measured), and a crash loses at most the last commits, which a resumed study redoes."""
    sqlite = url.startswith("sqlite")
    try:
        storage = RDBStorage(url, engine_kwargs={} if sqlite else {"pool_pre_ping": True})
    except Exception as err:  # name the storage (without its password) and the cause
        raise TuningError(f"cannot open tuning storage {redact(url)}: {type(err).__name__}: {err}") from None
    if sqlite:
        from sqlalchemy import event

        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        event.listen(storage.engine, "connect", _pragmas)
        storage.engine.dispose()  # reconnect with the pragmas
    return storage
