"""``tollhouse keys create|list|revoke``."""

from __future__ import annotations

import argparse
from typing import Any

from governance.keys import KeyService
from tollhouse.commands.context import load, open_database
from tollhouse.table import render_table


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("keys", help="client API keys")
    sub = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create_p = sub.add_parser("create", parents=[common], help="create a key (printed once)")
    create_p.add_argument("--app", required=True, help="the application the key belongs to")
    create_p.add_argument("--team", help="the team that owns the application")
    create_p.add_argument("--description")
    create_p.set_defaults(handler=create)
    list_p = sub.add_parser("list", parents=[common], help="list keys (never their secrets)")
    list_p.add_argument("--all", action="store_true", help="include revoked keys")
    list_p.set_defaults(handler=list_keys)
    revoke_p = sub.add_parser("revoke", parents=[common], help="revoke a key by id or prefix")
    revoke_p.add_argument("key", help="key id or visible prefix")
    revoke_p.set_defaults(handler=revoke)


def _service(args: argparse.Namespace) -> KeyService:
    return KeyService(open_database(load(args)).sessions)


def create(args: argparse.Namespace) -> int:
    created = _service(args).create(args.app, args.team, args.description)
    p = created.principal
    print(f"created key {p.key_id} (prefix {p.prefix}) for app {p.app}, team {p.team or '-'}")
    print("the key is shown once; store it now:")
    print(created.secret)
    return 0


def list_keys(args: argparse.Namespace) -> int:
    rows = [
        [
            k.id,
            k.prefix,
            k.app,
            k.team or "-",
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active",
        ]
        for k in _service(args).list(include_revoked=args.all)
    ]
    print(render_table(["id", "prefix", "app", "team", "created (UTC)", "status"], rows))
    return 0


def revoke(args: argparse.Namespace) -> int:
    row = _service(args).revoke(args.key)
    print(f"revoked key {row.id} ({row.prefix}) of app {row.app}")
    return 0
