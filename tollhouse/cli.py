"""``tollhouse`` entry point: parses arguments and hands over to one command module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from governance.errors import TollhouseError
from tollhouse.commands import (
    audit,
    dashboard,
    db,
    demo,
    keys,
    monitors,
    policy,
    prices,
    principals,
    serve,
    spend,
)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="FILE",
        help="configuration file (default: $TOLLHOUSE_CONFIG or ./tollhouse.yaml)",
    )
    parser = argparse.ArgumentParser(
        prog="tollhouse", description="Governance proxy for LLM traffic."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        serve,
        db,
        principals,
        keys,
        policy,
        audit,
        spend,
        prices,
        monitors,
        dashboard,
        demo,
    ):
        module.register(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.handler(args)
    except TollhouseError as error:
        print(f"tollhouse: {error.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result
