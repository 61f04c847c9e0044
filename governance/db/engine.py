"""Engines: SQLite in WAL mode (the embedded default) or PostgreSQL through psycopg 3."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from governance.db.money import register_sqlite_functions
from governance.db.types import canonical_json_text
from governance.errors import ConfigError


def normalise_url(url: str) -> str:
    """Map ``postgresql://`` and ``postgres://`` onto the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"database_url: unsupported database {parsed.get_backend_name()!r}; "
            "use sqlite:///PATH or postgresql+psycopg://..."
        )
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigError(
            "database_url: SQLite needs a file path (an in-memory database is not shared)"
        )
    return parsed.render_as_string(hide_password=False)


def make_engine(
    url: str,
    *,
    busy_timeout_s: float = 5.0,
    durable: bool = True,
    read_only: bool = False,
    **kwargs: Any,
) -> Engine:
    """Create an engine with Tollhouse's connection settings for the URL's backend.

    ``durable=False`` (SQLite) commits without waiting for the disk: for counters whose
    loss in a power cut is harmless (rate-limit windows), never for audit records.
    ``read_only=True`` makes the database refuse every write on the engine's connections
    (SQLite ``query_only``, PostgreSQL ``default_transaction_read_only``): for readers such
    as the dashboard, so that a bug in a page can never change what it shows."""
    url = normalise_url(url)
    kwargs.setdefault("json_serializer", canonical_json_text)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas if durable else _sqlite_pragmas_fast)
        if read_only:
            event.listen(engine, "connect", _sqlite_query_only)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 5)
    connect_args: dict[str, Any] = {"connect_timeout": max(1, int(busy_timeout_s))}
    if read_only:
        connect_args["options"] = "-c default_transaction_read_only=on"
    return create_engine(url, connect_args=connect_args, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # an audit record is durable once committed
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    register_sqlite_functions(dbapi_connection)


def _sqlite_query_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _sqlite_pragmas_fast(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL: no fsync per commit
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
