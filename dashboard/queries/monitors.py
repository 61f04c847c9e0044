"""Drift and alerts page reads: monitor runs and their per-signal figures, alerts, model
fingerprints. The monitors write these tables; the dashboard only reads them (and
acknowledges alerts through `monitors.alerts.AlertBook`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from governance.db import AlertRecord, ModelFingerprint, MonitorRun


def runs(
    sessions: sessionmaker[Session], since: dt.datetime, kind: str | None = None
) -> pd.DataFrame:
    """Runs started since ``since`` (newest first): id, job, kind, subject, started,
    status, seconds, error."""
    query = select(MonitorRun).where(MonitorRun.started_at >= since)
    if kind is not None:
        query = query.where(MonitorRun.kind == kind)
    with sessions() as session:
        rows = session.scalars(query.order_by(MonitorRun.id.desc()).limit(2000)).all()
    return pd.DataFrame(
        [
            {
                "id": r.id,
                "job": r.job,
                "kind": r.kind,
                "subject": r.subject,
                "started": r.started_at,
                "status": r.status,
                "seconds": (r.finished_at - r.started_at).total_seconds()
                if r.finished_at
                else None,
                "error": r.error,
            }
            for r in rows
        ],
        columns=["id", "job", "kind", "subject", "started", "status", "seconds", "error"],
    )


def signal_series(
    sessions: sessionmaker[Session], job: str, subject: str, since: dt.datetime
) -> pd.DataFrame:
    """One row per (drift run, signal): started, signal, effect, threshold, adjusted_p,
    drifted; for charting each signal over time."""
    with sessions() as session:
        rows = session.execute(
            select(MonitorRun.started_at, MonitorRun.figures)
            .where(
                MonitorRun.job == job,
                MonitorRun.subject == subject,
                MonitorRun.kind == "drift",
                MonitorRun.started_at >= since,
            )
            .order_by(MonitorRun.started_at)
        ).all()
    records = [
        {
            "started": started,
            "signal": signal["name"],
            "effect": signal.get("effect"),
            "threshold": signal.get("threshold"),
            "adjusted_p": signal.get("adjusted_p"),
            "drifted": bool(signal.get("drifted")),
        }
        for started, figures in rows
        for signal in (figures or {}).get("signals", [])
    ]
    return pd.DataFrame(
        records, columns=["started", "signal", "effect", "threshold", "adjusted_p", "drifted"]
    )


def run(sessions: sessionmaker[Session], run_id: int) -> MonitorRun | None:
    with sessions() as session:
        return session.get(MonitorRun, run_id)


def report_file(run_row: MonitorRun, reports_dir: Path) -> Path | None:
    """The run's Evidently HTML report, if it is a file inside ``reports_dir``: a path
    stored in the database never makes the dashboard read or embed a file elsewhere."""
    if not run_row.report_path:
        return None
    root = reports_dir.resolve()
    path = Path(run_row.report_path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def alerts(sessions: sessionmaker[Session], *, open_only: bool, since: dt.datetime) -> pd.DataFrame:
    """Alerts raised since ``since`` (or still open), newest first."""
    query = select(AlertRecord)
    if open_only:
        query = query.where(AlertRecord.resolved_at.is_(None))
    else:
        query = query.where(or_(AlertRecord.raised_at >= since, AlertRecord.resolved_at.is_(None)))
    with sessions() as session:
        rows = session.scalars(query.order_by(AlertRecord.id.desc()).limit(1000)).all()
    return pd.DataFrame(
        [
            {
                "id": a.id,
                "severity": a.severity,
                "kind": a.kind,
                "subject": a.subject,
                "summary": a.summary,
                "raised": a.raised_at,
                "last seen": a.last_seen_at,
                "occurrences": a.occurrences,
                "state": "resolved" if a.resolved_at else "firing",
                "acknowledged by": a.acknowledged_by,
            }
            for a in rows
        ],
        columns=[
            "id",
            "severity",
            "kind",
            "subject",
            "summary",
            "raised",
            "last seen",
            "occurrences",
            "state",
            "acknowledged by",
        ],
    )


def fingerprints(sessions: sessionmaker[Session]) -> pd.DataFrame:
    """Every identity each upstream deployment has answered with, oldest first."""
    with sessions() as session:
        rows = session.scalars(
            select(ModelFingerprint).order_by(
                ModelFingerprint.upstream,
                ModelFingerprint.deployment_model,
                ModelFingerprint.first_seen,
            )
        ).all()
    return pd.DataFrame(
        [
            {
                "upstream": f.upstream,
                "deployment model": f.deployment_model,
                "response model": f.response_model,
                "system fingerprint": f.system_fingerprint,
                "headers": ", ".join(f"{k}={v}" for k, v in sorted((f.headers or {}).items())),
                "first seen": f.first_seen,
                "last seen": f.last_seen,
                "requests": f.requests,
            }
            for f in rows
        ],
        columns=[
            "upstream",
            "deployment model",
            "response model",
            "system fingerprint",
            "headers",
            "first seen",
            "last seen",
            "requests",
        ],
    )
