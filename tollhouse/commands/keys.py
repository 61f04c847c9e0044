"""``tollhouse keys create|list|revoke|rotate``."""

from __future__ import annotations

import argparse
import datetime as dt
import re
from typing import Any

from governance.errors import InvalidRequestError
from governance.keys import CreatedKey, KeyService
from tollhouse.commands.context import Context, acting_principal, load, open_database
from tollhouse.table import render_table

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"(\d+)([smhdw])")


def duration(value: str) -> dt.timedelta:
    """``90d``, ``24h``, ``30m``, ``45s``, ``2w`` or a sum such as ``1d12h``."""
    text = value.strip().lower()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(
            f"not a duration: {value!r} (use e.g. 90d, 24h, 30m, 1d12h)"
        )
    total = dt.timedelta()
    for number, unit in parts:
        total += dt.timedelta(**{_UNITS[unit]: int(number)})
    return total


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("keys", help="API keys of principals")
    sub = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create_p = sub.add_parser("create", parents=[common], help="create a key (printed once)")
    owner = create_p.add_mutually_exclusive_group(required=True)
    owner.add_argument("--principal", help="the principal the key acts for")
    owner.add_argument(
        "--app", help="an application: its app principal (created when missing) gets the key"
    )
    create_p.add_argument("--team", help="with --app: the team that owns the application")
    create_p.add_argument("--description")
    create_p.add_argument(
        "--expires-in", type=duration, metavar="DURATION", help="e.g. 90d (default: no expiry)"
    )
    create_p.set_defaults(handler=create)
    list_p = sub.add_parser("list", parents=[common], help="list keys (never their secrets)")
    list_p.add_argument("--all", action="store_true", help="include revoked and expired keys")
    list_p.add_argument("--principal", help="only this principal's keys")
    list_p.set_defaults(handler=list_keys)
    revoke_p = sub.add_parser("revoke", parents=[common], help="revoke a key by id or prefix")
    revoke_p.add_argument("key", help="key id or visible prefix")
    revoke_p.set_defaults(handler=revoke)
    rotate_p = sub.add_parser(
        "rotate", parents=[common], help="replace a key; the old one works for an overlap"
    )
    rotate_p.add_argument("key", help="key id or visible prefix")
    rotate_p.add_argument(
        "--overlap",
        type=duration,
        required=True,
        metavar="DURATION",
        help="how long the old key keeps working, e.g. 24h (0s: stop it now)",
    )
    rotate_p.add_argument(
        "--expires-in",
        type=duration,
        metavar="DURATION",
        help="the new key's lifetime (default: the old key's lifetime, if it had one)",
    )
    rotate_p.set_defaults(handler=rotate)


def _context(args: argparse.Namespace) -> tuple[Context, KeyService]:
    context = open_database(load(args))
    return context, KeyService(context.sessions)


def _when(moment: dt.datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def _print_created(created: CreatedKey) -> None:
    p = created.principal
    owner = f"principal {p.name}"
    if p.app:
        owner += f" (app {p.app}, team {p.team or '-'})"
    expiry = f", expires {_when(created.expires_at)} UTC" if created.expires_at else ""
    print(f"created key {p.key_id} (prefix {p.prefix}) for {owner}{expiry}")
    print("the key is shown once; store it now:")
    print(created.secret)


def create(args: argparse.Namespace) -> int:
    context, keys = _context(args)
    actor = acting_principal(context)
    now = dt.datetime.now(dt.UTC)
    expires_at = now + args.expires_in if args.expires_in else None
    if args.principal:
        if args.team:
            raise InvalidRequestError(
                "--team goes with --app; a principal's team is set when it is created"
            )
        created = keys.create(args.principal, args.description, expires_at, actor=actor)
    else:
        created = keys.create_for_app(
            args.app, args.team, args.description, expires_at=expires_at, actor=actor
        )
    _print_created(created)
    return 0


def list_keys(args: argparse.Namespace) -> int:
    _, keys = _context(args)
    now = dt.datetime.now(dt.UTC)
    rows = [
        [
            k.id,
            k.prefix,
            k.principal,
            k.app or "-",
            k.team or "-",
            _when(k.created_at),
            k.status(now),
        ]
        for k in keys.list(include_revoked=args.all, principal=args.principal)
    ]
    headers = ["id", "prefix", "principal", "app", "team", "created (UTC)", "status"]
    print(render_table(headers, rows))
    return 0


def revoke(args: argparse.Namespace) -> int:
    context, keys = _context(args)
    key = keys.revoke(args.key, actor=acting_principal(context))
    print(f"revoked key {key.id} ({key.prefix}) of principal {key.principal}")
    return 0


def rotate(args: argparse.Namespace) -> int:
    context, keys = _context(args)
    expires_at = dt.datetime.now(dt.UTC) + args.expires_in if args.expires_in else None
    created = keys.rotate(
        args.key, args.overlap, expires_at=expires_at, actor=acting_principal(context)
    )
    old = created.replaced
    assert old is not None
    print(f"key {old.id} ({old.prefix}) keeps working until {_when(old.expires_at)} UTC")
    _print_created(created)
    return 0
