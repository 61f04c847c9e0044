"""The ``tollhouse monitors`` handlers (imported only when a monitors command runs)."""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import sys
from functools import cache

from governance.access import Permission, Principal
from governance.audit.vault import MasterKey
from governance.config import Settings
from governance.errors import ConfigError, NotFoundError
from monitors.alerts import AlertBook
from monitors.canary.client import CanaryClient, ProxyCanaryClient
from monitors.canary.job import CanaryStore
from monitors.drift import CachedEmbedder, Embedder, EndpointEmbedder, LocalEmbedder
from monitors.jobs import JobConfig, Services, run_job
from monitors.runs import RunLog
from monitors.scheduler import Scheduler
from monitors.sinks import Notifier, build_sinks
from tollhouse.commands.context import Context, acting_principal, load, open_database
from tollhouse.table import render_table


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def build_services(context: Context, *, quiet: bool = False) -> Services:
    """Everything a job run needs, from the settings; secrets checked when first used."""
    settings = context.settings
    config = settings.monitors
    secrets = {name: value.get_secret_value() for name, value in settings.monitor_secrets.items()}
    master = settings.audit.master_key_file
    return Services(
        config=config,
        sessions=context.sessions,
        clock=_utcnow,
        alerts=AlertBook(
            context.sessions,
            clock=_utcnow,
            cooldown=dt.timedelta(seconds=config.alerts.cooldown_s),
        ),
        notifier=Notifier(
            context.sessions,
            build_sinks(config.alerts.sinks, secrets),
            clock=_utcnow,
            repeat=dt.timedelta(seconds=config.alerts.repeat_s),
        ),
        canary_client=lambda: _canary_client(settings, secrets),
        embedder=cache(lambda: _embedder(settings, secrets)),
        master_key=MasterKey.from_file(master) if master else None,
        progress=(lambda _: None) if quiet else _stderr,
    )


def _canary_client(settings: Settings, secrets: dict[str, str]) -> CanaryClient:
    config = settings.monitors
    key = secrets.get(config.canary_key_env)
    if not key:
        raise ConfigError(
            f"monitors.canary_key_env: environment variable {config.canary_key_env} is not "
            "set; create a key for the canary app (`tollhouse keys create --app canary`) "
            "and export it"
        )
    return ProxyCanaryClient(config.proxy_url, key)


def _embedder(settings: Settings, secrets: dict[str, str]) -> Embedder | None:
    config = settings.monitors.embeddings
    if config.kind == "off":
        return None
    if config.kind == "endpoint":
        assert config.base_url is not None and config.model is not None
        api_key = secrets.get(config.api_key_env) if config.api_key_env else None
        if config.api_key_env and not api_key:
            raise ConfigError(
                f"monitors.embeddings.api_key_env: environment variable {config.api_key_env} "
                "is not set"
            )
        return CachedEmbedder(EndpointEmbedder(config.base_url, config.model, api_key=api_key))
    return CachedEmbedder(LocalEmbedder(config.model_path))


def _job(settings: Settings, name: str) -> JobConfig:
    job = settings.monitors.job(name)
    if job is None:
        known = ", ".join(j.name for j in settings.monitors.jobs) or "none configured"
        raise NotFoundError(f"no monitor job {name!r} (jobs: {known}); see monitors.jobs")
    return job


def _open(args: argparse.Namespace, permission: Permission) -> tuple[Context, Principal]:
    context = open_database(load(args))
    actor = acting_principal(context)
    actor.require(permission)
    return context, actor


def list_jobs(args: argparse.Namespace) -> int:
    context, _ = _open(args, Permission.OPS_READ)
    runs = RunLog(context.sessions, _utcnow)
    rows = []
    for job in context.settings.monitors.jobs:
        last = runs.recent(job.name, limit=1)
        status = f"{last[0].status} at {last[0].started_at:%Y-%m-%d %H:%M}" if last else "never"
        rows.append([job.name, job.kind, f"{job.interval_s:.0f}s", status])
    print(render_table(["job", "kind", "every", "last run"], rows))
    return 0


def run(args: argparse.Namespace) -> int:
    context, _ = _open(args, Permission.MONITORS_MANAGE)
    settings = context.settings
    if args.all == bool(args.job):
        raise ConfigError("name one job, or --all")
    jobs = settings.monitors.jobs if args.all else [_job(settings, args.job)]
    services = build_services(context, quiet=args.quiet)
    worst = 0
    for job in jobs:
        result = run_job(services, job)
        for run_id, subject, status in result.runs:
            print(f"{job.name}: run {run_id} ({subject}): {status}")
        if result.error:
            print(f"{job.name}: failed: {result.error}")
        print(f"{job.name}: {result.firing} alert(s) firing")
        worst = max(worst, result.exit_status)
    return worst


def schedule(args: argparse.Namespace) -> int:
    context, _ = _open(args, Permission.MONITORS_MANAGE)
    settings = context.settings
    jobs = [_job(settings, n) for n in args.only] if args.only else list(settings.monitors.jobs)
    if not jobs:
        raise ConfigError("monitors.jobs: no jobs configured; nothing to schedule")
    services = build_services(context)
    scheduler = Scheduler(jobs, lambda job: run_job(services, job), progress=_stderr)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: scheduler.stop())
    _stderr(f"scheduling {len(jobs)} job(s): {', '.join(j.name for j in jobs)}")
    scheduler.run_forever()
    _stderr("scheduler stopped")
    return 0


def runs(args: argparse.Namespace) -> int:
    context, _ = _open(args, Permission.OPS_READ)
    rows = [
        [r.id, r.job, r.subject, r.status, f"{r.started_at:%Y-%m-%d %H:%M:%S}", r.report_path or ""]
        for r in RunLog(context.sessions, _utcnow).recent(args.job, limit=args.limit)
    ]
    print(render_table(["run", "job", "subject", "status", "started (UTC)", "report"], rows))
    return 0


def alerts(args: argparse.Namespace) -> int:
    context, _ = _open(args, Permission.OPS_READ)
    book = AlertBook(context.sessions, clock=_utcnow)
    rows = [
        [
            a.id,
            a.severity,
            a.kind,
            a.subject,
            f"{a.raised_at:%Y-%m-%d %H:%M}",
            f"{a.resolved_at:%Y-%m-%d %H:%M}" if a.resolved_at else "firing",
            a.acknowledged_by or "",
            a.summary,
        ]
        for a in book.alerts(job=args.job, open_only=not args.all)
    ]
    headers = ["id", "severity", "kind", "subject", "raised", "resolved", "ack", "summary"]
    print(render_table(headers, rows))
    return 0


def ack(args: argparse.Namespace) -> int:
    context, actor = _open(args, Permission.MONITORS_MANAGE)
    alert = AlertBook(context.sessions, clock=_utcnow).acknowledge(args.alert_id, actor.name)
    state = "resolved" if alert.resolved_at else "still firing"
    print(f"alert {alert.id} acknowledged by {alert.acknowledged_by} ({state})")
    return 0


def rebaseline(args: argparse.Namespace) -> int:
    context, _ = _open(args, Permission.MONITORS_MANAGE)
    job = _job(context.settings, args.job)
    if job.kind != "canary":
        raise ConfigError(f"{job.name} is a {job.kind} job; only canary jobs have a baseline")
    forgot = CanaryStore(context.sessions, _utcnow).forget_baseline(job.name, job.model)
    print(
        f"{job.name}: the next run records a new baseline"
        if forgot
        else f"{job.name}: no baseline yet; the next run records one"
    )
    return 0
