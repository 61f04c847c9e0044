"""``tollhouse principals create|list|disable|roles``."""

from __future__ import annotations

import argparse
from typing import Any

from governance.access import Role
from governance.access.principals import PrincipalInfo, PrincipalService
from tollhouse.commands.context import Context, acting_principal, load, open_database
from tollhouse.table import render_table

ROLES = [role.value for role in Role]


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("principals", help="people and applications, with roles")
    sub = parser.add_subparsers(dest="principals_command", required=True, metavar="ACTION")
    create_p = sub.add_parser("create", parents=[common], help="create a principal")
    create_p.add_argument("name")
    _role_option(create_p)
    create_p.add_argument("--app", help="the application (required with --role app)")
    create_p.add_argument("--team", help="the team that owns the application")
    create_p.add_argument("--description")
    create_p.set_defaults(handler=create)
    list_p = sub.add_parser("list", parents=[common], help="list principals and their roles")
    list_p.add_argument("--all", action="store_true", help="include disabled principals")
    list_p.set_defaults(handler=list_principals)
    disable_p = sub.add_parser(
        "disable", parents=[common], help="disable a principal (its keys stop working)"
    )
    disable_p.add_argument("name")
    disable_p.set_defaults(handler=disable)
    roles_p = sub.add_parser("roles", parents=[common], help="replace a principal's roles")
    roles_p.add_argument("name")
    _role_option(roles_p)
    roles_p.set_defaults(handler=set_roles)


def _role_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--role",
        dest="roles",
        action="append",
        required=True,
        choices=ROLES,
        metavar="ROLE",
        help=f"repeat for several roles: {', '.join(ROLES)}",
    )


def _context(args: argparse.Namespace) -> tuple[Context, PrincipalService]:
    context = open_database(load(args))
    return context, PrincipalService(context.sessions)


def _describe(p: PrincipalInfo) -> str:
    app = f", app {p.app}, team {p.team or '-'}" if p.app else ""
    return f"principal {p.name} ({p.id}): roles {', '.join(p.role_names)}{app}"


def create(args: argparse.Namespace) -> int:
    context, service = _context(args)
    created = service.create(
        args.name,
        args.roles,
        app=args.app,
        team=args.team,
        description=args.description,
        actor=acting_principal(context),
    )
    print(f"created {_describe(created)}")
    print(f"give it a key: tollhouse keys create --principal {created.name}")
    return 0


def list_principals(args: argparse.Namespace) -> int:
    _, service = _context(args)
    rows = [
        [
            p.name,
            ", ".join(p.role_names),
            p.app or "-",
            p.team or "-",
            f"{p.created_at:%Y-%m-%d %H:%M}",
            "active" if p.enabled else f"disabled {p.disabled_at:%Y-%m-%d %H:%M}",
            p.description or "",
        ]
        for p in service.list(include_disabled=args.all)
    ]
    headers = ["name", "roles", "app", "team", "created (UTC)", "status", "description"]
    print(render_table(headers, rows))
    return 0


def disable(args: argparse.Namespace) -> int:
    context, service = _context(args)
    disabled = service.disable(args.name, actor=acting_principal(context))
    print(
        f"disabled {_describe(disabled)}; its keys stop working "
        "(on running proxies within auth_cache_ttl_s)"
    )
    return 0


def set_roles(args: argparse.Namespace) -> int:
    context, service = _context(args)
    changed = service.set_roles(args.name, args.roles, actor=acting_principal(context))
    print(f"now {_describe(changed)}")
    return 0
