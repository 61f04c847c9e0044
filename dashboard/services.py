"""What the dashboard's pages read through: built once per process from the settings.

Every query runs on a read-only engine (the database refuses writes on it). The few
actions that must leave a trace go through a second, writable engine and the services
that audit them: opening stored content and exporting (`AuditReader`, an ``admin`` record
on the shared chain each), acknowledging an alert (`AlertBook`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

import migrations
from governance.audit.checkpoint import trusted_keys
from governance.audit.reader import AuditReader
from governance.audit.vault import MasterKey
from governance.config import Settings, load_settings
from governance.db import make_engine, session_factory
from governance.errors import ConfigError
from governance.keys import KeyService
from governance.policy.store import PolicyStore


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Services:
    settings: Settings
    read_engine: Engine
    reads: sessionmaker[Session]
    write_engine: Engine
    writes: sessionmaker[Session]
    master: MasterKey | None
    trusted: dict[str, Ed25519PublicKey]
    clock: Callable[[], dt.datetime] = field(default=_now)

    @property
    def keys(self) -> KeyService:
        return KeyService(self.reads)

    @property
    def policies(self) -> PolicyStore:
        return PolicyStore(self.reads, four_eyes=self.settings.access.four_eyes)

    @property
    def records(self) -> AuditReader:
        """Metadata queries (read-only)."""
        return AuditReader(self.read_engine, self.reads, self.master, clock=self.clock)

    @property
    def audited(self) -> AuditReader:
        """Content reads and exports, which append an audit record."""
        return AuditReader(self.write_engine, self.writes, self.master, clock=self.clock)

    def close(self) -> None:
        self.read_engine.dispose()
        self.write_engine.dispose()


def open_services(settings: Settings) -> Services:
    """Engines and keys for ``settings``; refuses a database whose schema is not current,
    since every page reads tables the latest migrations create."""
    write_engine = make_engine(settings.database_url)
    try:
        behind = migrations.pending(write_engine)
    except Exception as exc:
        write_engine.dispose()
        raise ConfigError(
            f"database_url: cannot reach the database ({type(exc).__name__}: {exc})"
        ) from exc
    if behind:
        write_engine.dispose()
        raise ConfigError("the database schema is not current; run `tollhouse db upgrade` first")
    read_engine = make_engine(settings.database_url, read_only=True)
    master_file = settings.audit.master_key_file
    return Services(
        settings=settings,
        read_engine=read_engine,
        reads=session_factory(read_engine),
        write_engine=write_engine,
        writes=session_factory(write_engine),
        master=MasterKey.from_file(master_file) if master_file else None,
        trusted=trusted_keys(settings.audit.signing_key_file, settings.audit.verify_key_files),
    )


def load_services(config_path: Path) -> Services:
    return open_services(load_settings(config_path))
