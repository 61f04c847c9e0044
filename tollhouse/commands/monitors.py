"""``tollhouse monitors``: drift, fingerprint and canary jobs, their runs and alerts.

``run JOB`` is one shot for cron or a Kubernetes CronJob; its exit status says whether
the job has an alert firing afterwards (0 none, 3 firing, 1 the run failed, 2 bad
configuration). ``schedule`` runs every job at its configured interval until stopped.
Commands act as the principal of ``$TOLLHOUSE_KEY`` (or the local operator): reading
runs and alerts needs ``ops:read``; running jobs, acknowledging alerts and re-baselining
need ``monitors:manage``.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any


def _lazy(name: str) -> Callable[[argparse.Namespace], int]:
    """The handler ``name`` of `tollhouse.commands.monitors_run`, imported on first use:
    the monitors' libraries (Evidently, torch) are an extra a proxy-only install lacks."""

    def handler(args: argparse.Namespace) -> int:
        module = importlib.import_module("tollhouse.commands.monitors_run")
        result: int = getattr(module, name)(args)
        return result

    return handler


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("monitors", help="drift, model-change and canary monitors")
    sub = parser.add_subparsers(dest="monitors_command", required=True, metavar="ACTION")
    p = sub.add_parser("list", parents=[common], help="configured jobs and their last run")
    p.set_defaults(handler=_lazy("list_jobs"))
    p = sub.add_parser("run", parents=[common], help="run one job once (exit 3: alert firing)")
    p.add_argument("job", nargs="?", help="the job's name (see `monitors list`)")
    p.add_argument("--all", action="store_true", help="run every configured job once")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(handler=_lazy("run"))
    p = sub.add_parser("schedule", parents=[common], help="run jobs at their intervals")
    p.add_argument("--only", action="append", metavar="JOB", help="run only these jobs")
    p.set_defaults(handler=_lazy("schedule"))
    p = sub.add_parser("runs", parents=[common], help="recent runs")
    p.add_argument("job", nargs="?")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(handler=_lazy("runs"))
    p = sub.add_parser("alerts", parents=[common], help="open alerts (--all: also resolved)")
    p.add_argument("--all", action="store_true")
    p.add_argument("--job")
    p.set_defaults(handler=_lazy("alerts"))
    p = sub.add_parser("ack", parents=[common], help="acknowledge an alert")
    p.add_argument("alert_id", type=int)
    p.set_defaults(handler=_lazy("ack"))
    p = sub.add_parser(
        "rebaseline", parents=[common], help="a canary job's next run records a new baseline"
    )
    p.add_argument("job")
    p.set_defaults(handler=_lazy("rebaseline"))
