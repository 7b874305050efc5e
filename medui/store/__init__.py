"""The database: one engine per URL, Alembic migrations at start-up, short transactions through `session_scope`."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from medui.config import settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

_engines: dict[str, Engine] = {}
_migrated: set[str] = set()
_lock = threading.Lock()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy, not the driver, issue BEGIN (pysqlite's own handling defers it too late).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL, not the WAL-mode favourite NORMAL: every commit is synced, so a save the page reported survives a
        # power cut too, not only a killed process. Set here because builds differ in their default.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        # IMMEDIATE takes the write lock up front, so two processes appending to the audit chain
        # cannot both read the same head; readers are not blocked in WAL mode.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _finite(value: Any) -> Any:
    # Hand-written: json.dumps has no hook for floats, and NaN/Infinity are not JSON (PostgreSQL refuses them).
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _json_dumps(value: Any) -> str:
    """JSON columns on either backend: a NaN or infinite metric (too short a strip for HRV) is stored as null."""
    return json.dumps(_finite(value))


def engine(url: str | None = None) -> Engine:
    """The engine for `url` (default: the configured database), migrated to the latest schema."""
    url = url or settings().database_url
    with _lock:
        if url not in _engines:
            # PostgreSQL hands timestamps back in the server's zone; UTC, as SQLite gives them, so shown times and
            # day boundaries (Records' date filter) do not depend on where the server runs.
            options = {"connect_args": {"options": "-c timezone=UTC"}} if url.startswith("postgresql") else {}
            new = create_engine(url, pool_pre_ping=True, json_serializer=_json_dumps, **options)
            if new.dialect.name == "sqlite":
                _configure_sqlite(new)
            _engines[url] = new
        if url not in _migrated:
            migrate(_engines[url])
            _migrated.add(url)
        return _engines[url]


def alembic_config(bound: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = bound
    return cfg


def migrate(bound: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    command.upgrade(alembic_config(bound), "head")


@contextmanager
def session_scope() -> Iterator[Session]:
    """A transaction that commits on success and rolls back on any error."""
    maker = sessionmaker(bind=engine(), expire_on_commit=False)
    with maker() as session, session.begin():
        yield session


def reset_engines() -> None:
    """Forget cached engines (tests switch MEDUI_HOME between cases)."""
    with _lock:
        for cached in _engines.values():
            cached.dispose()
        _engines.clear()
        _migrated.clear()
