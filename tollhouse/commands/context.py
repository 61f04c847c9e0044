"""Helpers every command shares: settings and database handles."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

import migrations
from governance.config import Settings, load_settings, resolve_config_path
from governance.db import make_engine, session_factory
from governance.errors import ConfigError


@dataclass
class Context:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]


def load(args: argparse.Namespace) -> Settings:
    return load_settings(resolve_config_path(args.config))


def open_database(settings: Settings, *, require_current: bool = True) -> Context:
    engine = make_engine(settings.database_url)
    if require_current:
        try:
            behind = migrations.pending(engine)
        except Exception as exc:
            engine.dispose()
            raise ConfigError(
                f"database_url: cannot reach the database ({type(exc).__name__}: {exc})"
            ) from exc
        if behind:
            engine.dispose()
            raise ConfigError(
                "the database schema is not current; run `tollhouse db upgrade` first"
            )
    return Context(settings, engine, session_factory(engine))
