"""``tollhouse db upgrade|current``."""

from __future__ import annotations

import argparse
from typing import Any

import migrations
from governance.db import make_engine
from tollhouse.commands.context import load


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("db", help="database schema")
    sub = parser.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    sub.add_parser("upgrade", parents=[common], help="migrate to the newest schema").set_defaults(
        handler=upgrade
    )
    sub.add_parser("current", parents=[common], help="show the schema revision").set_defaults(
        handler=current
    )


def upgrade(args: argparse.Namespace) -> int:
    settings = load(args)
    migrations.upgrade(settings.database_url)
    print(f"database at revision {migrations.head_revision()}")
    return 0


def current(args: argparse.Namespace) -> int:
    engine = make_engine(load(args).database_url)
    try:
        revision = migrations.current_revision(engine)
    finally:
        engine.dispose()
    head = migrations.head_revision()
    print(f"current: {revision or '(empty)'}  newest: {head}")
    return 0 if revision == head else 1
