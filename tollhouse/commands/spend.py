"""``tollhouse spend report``: spend per team, app, model, upstream or destination.

Acts as the principal of ``$TOLLHOUSE_KEY`` (or the local operator), which needs
``spend:read``. ``--format csv`` writes RFC 4180 CSV in UTF-8 for spreadsheets: a header
row, one row per line, costs as plain exact decimals, no totals row.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from governance.spend.report import (
    DIMENSIONS,
    NONE_LABEL,
    SpendLine,
    aligned_decimals,
    group_columns,
    line_figures,
    report_csv,
    spend_report,
    totals,
)
from tollhouse.commands.context import acting_principal, load, open_database
from tollhouse.commands.keys import duration

# Their shorter names in a table.
TABLE_FIGURES = (
    "requests",
    "ok",
    "estimated",
    "unpriced",
    "input",
    "cached",
    "output",
    "cost",
    "currency",
)


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("spend", help="spend reports")
    sub = parser.add_subparsers(dest="spend_command", required=True, metavar="ACTION")
    p = sub.add_parser("report", parents=[common], help="spend per group over UTC days")
    p.add_argument("--by", choices=DIMENSIONS, required=True, help="what a line is")
    p.add_argument(
        "--since",
        type=since_date,
        required=True,
        metavar="WHEN",
        help="a duration back from now (30d, 12h) or an ISO date; the report starts at "
        "that UTC day",
    )
    p.add_argument(
        "--until", type=iso_date, metavar="DATE", help="the last UTC day included (ISO date)"
    )
    p.add_argument("--format", choices=["table", "csv"], default="table")
    p.add_argument(
        "--output", "-o", type=Path, metavar="FILE", help="write to FILE instead of stdout"
    )
    p.set_defaults(handler=report)


def iso_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date: {value!r} (e.g. 2026-11-01)") from exc


def since_date(value: str) -> dt.date:
    """The UTC day ``value`` (``30d``, ``12h``, ...) before now falls on, or an ISO date."""
    try:
        back = duration(value)
    except argparse.ArgumentTypeError:
        try:
            return iso_date(value)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"not a duration or a date: {value!r} (use e.g. 30d, 12h or 2026-11-01)"
            ) from None
    return (dt.datetime.now(dt.UTC) - back).date()


def report(args: argparse.Namespace) -> int:
    context = open_database(load(args))
    actor = acting_principal(context)
    lines = spend_report(context.sessions, args.by, args.since, args.until, actor=actor)
    columns = group_columns(args.by)
    if args.format == "csv":
        _write(args.output, report_csv(columns, lines).encode("utf-8"))
    else:
        span = f"{args.since} to {args.until or 'today'}"
        text = f"spend by {args.by}, UTC days {span}\n\n{render_spend_table(columns, lines)}\n"
        _write(args.output, text.encode("utf-8"))
    return 0


def _write(path: Path | None, data: bytes) -> None:
    if path is not None:
        path.write_bytes(data)
        return
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def render_spend_table(columns: tuple[str, ...], lines: list[SpendLine]) -> str:
    """The report as an aligned table (numbers right-aligned, costs on their decimal
    point) with a TOTAL line per currency under a rule."""
    if not lines:
        return f"{'  '.join(columns)}\n{NONE_LABEL}"
    overall = totals(lines)
    everything = [*lines, *overall]
    costs = aligned_decimals([line.cost for line in everything])
    rows = []
    for line, cost in zip(everything, costs, strict=True):
        group = list(line.group) + [""] * (len(columns) - len(line.group))
        rows.append([*group, *line_figures(line)[:-2], cost, line.currency or "-"])
    headers = [*columns, *TABLE_FIGURES]
    numeric = set(range(len(columns), len(headers) - 1))
    cells = [headers, *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def render(row: list[str]) -> str:
        padded = [
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * width for width in widths)
    body = [render(row) for row in rows]
    split = len(lines)
    return "\n".join([render(headers), rule, *body[:split], rule, *body[split:]])
