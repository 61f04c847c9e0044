"""Helpers every command shares: settings, database handles, the acting principal."""

from __future__ import annotations

import argparse
import getpass
import os
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

import migrations
from governance.access import Principal
from governance.config import Settings, load_settings, resolve_config_path
from governance.db import make_engine, session_factory
from governance.errors import ConfigError
from governance.keys import KeyService


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


KEY_VARIABLE = "TOLLHOUSE_KEY"


def acting_principal(context: Context, *, require_key: bool = False) -> Principal:
    """Who a command acts as: the principal of the key in ``$TOLLHOUSE_KEY``, else (unless
    ``require_key``) the local operator, an admin, since they can reach the database."""
    key = os.environ.get(KEY_VARIABLE, "").strip()
    if key:
        principal = KeyService(context.sessions).authenticate(key)
        if principal is None:
            raise ConfigError(
                f"{KEY_VARIABLE}: the key is unknown, revoked or expired, or its principal "
                f"is disabled; set a valid key or unset {KEY_VARIABLE} to act as the local "
                "operator"
            )
        return principal
    if require_key:
        raise ConfigError(
            f"this command acts only for a principal with a key: set {KEY_VARIABLE} to "
            "your key (`tollhouse keys create --principal NAME`)"
        )
    return Principal.operator(getpass.getuser())
