"""``tollhouse prices load|list``: the price table finance maintains.

``load`` stores a price file's new rows (``prices:manage``) and refuses, changing
nothing, a file that would rewrite or backdate a stored price; ``list`` shows every
stored price (``spend:read``). Both act as the principal of ``$TOLLHOUSE_KEY`` or the
local operator.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from governance.spend.price_file import read_price_file
from governance.spend.prices import PriceStore
from governance.spend.pricing import Price
from governance.spend.report import plain_decimal
from tollhouse.commands.context import Context, acting_principal, load, open_database
from tollhouse.table import render_table

HEADERS = [
    "upstream",
    "model",
    "effective_from",
    "input",
    "cached_input",
    "output",
    "currency",
    "basis",
]


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("prices", help="prices per million tokens")
    sub = parser.add_subparsers(dest="prices_command", required=True, metavar="ACTION")
    p = sub.add_parser("load", parents=[common], help="add a price file's new prices")
    p.add_argument("file", type=Path, metavar="FILE", help="the price file (YAML, docs/spend.md)")
    p.set_defaults(handler=load_prices)
    p = sub.add_parser("list", parents=[common], help="show every stored price")
    p.set_defaults(handler=list_prices)


def _store(context: Context) -> PriceStore:
    return PriceStore(context.sessions, context.settings.spend.currency)


def load_prices(args: argparse.Namespace) -> int:
    document = read_price_file(args.file)
    context = open_database(load(args))
    result = _store(context).load(
        document,
        actor=acting_principal(context),
        source=str(args.file),
        deployments=context.settings.deployed_models(),
    )
    if result.added:
        rows = [_row(p) for p in result.added]
        print(f"added {len(result.added)} prices from {args.file}:")
        print(render_table(HEADERS, rows))
    else:
        print(f"no new prices in {args.file}")
    print(f"{result.unchanged} already stored, unchanged")
    return 0


def list_prices(args: argparse.Namespace) -> int:
    context = open_database(load(args))
    prices = _store(context).list(acting_principal(context))
    print(render_table(HEADERS, [_row(p) for p in prices]))
    return 0


def describe_basis(basis: dict[str, Any] | None) -> str:
    """``2 GPU x 2.50/h, 12000 in + 1500 out tok/s`` for an internal rate; ``-`` if none."""
    internal = (basis or {}).get("internal")
    if not internal:
        return "-" if not basis else str(basis)
    return (
        f"{internal['gpus']} GPU x {internal['gpu_hour_cost']}/h, "
        f"{internal['input_tokens_per_s']} in + {internal['output_tokens_per_s']} out tok/s"
    )


def _row(price: Price) -> list[str]:
    return [
        price.upstream,
        price.model,
        price.effective_from.isoformat(),
        plain_decimal(price.input),
        "-" if price.cached_input is None else plain_decimal(price.cached_input),
        plain_decimal(price.output),
        price.currency,
        describe_basis(price.basis),
    ]
