"""``tollhouse demo``: a self-contained tour on an embedded database."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tollhouse.demo.run import DEMO_DIR, run


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "demo", parents=[common], help="run a local demo (demo model, proxy, traffic, summary)"
    )
    parser.add_argument(
        "--dir", type=Path, default=DEMO_DIR, help="state folder (default ./.tollhouse)"
    )
    parser.add_argument("--port", type=int, default=8080, help="proxy port (0 picks a free one)")
    parser.add_argument(
        "--dashboard-port", type=int, default=8501, help="dashboard port (0 picks a free one)"
    )
    parser.add_argument(
        "--no-wait", action="store_true", help="exit after the summary (no dashboard)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return run(args.dir, args.port, wait=not args.no_wait, dashboard_port=args.dashboard_port)
