"""``tollhouse audit export|tail``."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from governance.audit.export import iter_records, recent_completions, to_json_line
from governance.errors import ConfigError
from tollhouse.commands.context import load, open_database
from tollhouse.table import render_table


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("audit", help="the audit trail")
    sub = parser.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    export_p = sub.add_parser("export", parents=[common], help="write records as JSON Lines")
    export_p.add_argument("--format", choices=["jsonl"], default="jsonl")
    export_p.add_argument("--since", type=_timestamp, help="ISO 8601 time or date (UTC if no zone)")
    export_p.add_argument("--until", type=_timestamp, help="exclusive upper bound, same format")
    export_p.add_argument("--output", "-o", type=Path, help="file to write (default: stdout)")
    export_p.set_defaults(handler=export)
    tail_p = sub.add_parser("tail", parents=[common], help="show the latest completed requests")
    tail_p.add_argument("-n", "--lines", type=int, default=20)
    tail_p.set_defaults(handler=tail)


def _timestamp(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from exc
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def export(args: argparse.Namespace) -> int:
    context = open_database(load(args))
    count = 0
    try:
        out = args.output.open("wb") if args.output else sys.stdout.buffer
    except OSError as exc:
        raise ConfigError(f"--output: cannot write {args.output}: {exc.strerror}") from exc
    try:
        for record in iter_records(context.sessions, args.since, args.until):
            out.write(to_json_line(record))
            count += 1
    finally:
        if args.output:
            out.close()
        else:
            out.flush()
    print(f"exported {count} records", file=sys.stderr)
    return 0


def tail(args: argparse.Namespace) -> int:
    context = open_database(load(args))
    rows = [
        [
            f"{r.recorded_at:%Y-%m-%d %H:%M:%S}",
            r.request_id[-12:],
            r.app,
            r.requested_model or "-",
            r.upstream or "-",
            r.status,
            f"{r.input_tokens or 0}/{r.output_tokens or 0}{'~' if r.usage_estimated else ''}",
            f"{r.cost:f}" if r.cost is not None else "-",
            f"{r.latency_ms:.0f}" if r.latency_ms is not None else "-",
        ]
        for r in recent_completions(context.sessions, args.lines)
    ]
    headers = [
        "time (UTC)",
        "request",
        "app",
        "model",
        "upstream",
        "status",
        "tokens in/out",
        "cost",
        "ms",
    ]
    print(render_table(headers, rows))
    return 0
