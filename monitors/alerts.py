"""Alerts of the monitor jobs: raise, re-raise, resolve and acknowledge, stored in ``alerts``.

A job reports *findings* (the conditions that hold now); `AlertBook.reconcile` turns them
into alert rows. A condition is one open alert however many runs see it. It resolves
once runs of the same job and subject have stopped reporting it for the cool-down (a
signal that flickers around its threshold pages once, not on every run); a later
episode is a new alert. ``occurrences`` counts the runs that saw it.

Events (a changed model fingerprint) are not conditions that can return to normal: they
stay open until someone acknowledges them, which resolves them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from governance.db import AlertRecord
from governance.errors import NotFoundError

Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
RESOLVED_MARK = "@resolved:"


@dataclass(frozen=True)
class Finding:
    """A condition a job found to hold now. ``condition`` is its stable name (job kind,
    subject and signal); ``event`` findings only resolve when acknowledged."""

    condition: str
    kind: str
    severity: Severity
    subject: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    event: bool = False


@dataclass
class Changes:
    """What one reconcile did, by alert id."""

    raised: list[int] = field(default_factory=list)
    still_firing: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)

    @property
    def firing(self) -> int:
        return len(self.raised) + len(self.still_firing)


class AlertBook:
    """The alert table as the monitors see it."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Callable[[], dt.datetime],
        cooldown: dt.timedelta = dt.timedelta(0),
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._cooldown = cooldown

    def reconcile(self, job: str, subject: str, findings: Iterable[Finding]) -> Changes:
        """Raise every finding of this run; resolve this job's open alerts on ``subject``
        that the run no longer reports (events excepted)."""
        now = self._clock()
        changes = Changes()
        found = {f.condition: f for f in findings}
        with self._sessions.begin() as session:
            open_alerts = {
                a.condition: a
                for a in session.scalars(
                    select(AlertRecord).where(
                        AlertRecord.job == job,
                        AlertRecord.subject == subject[:300],
                        AlertRecord.resolved_at.is_(None),
                    )
                )
            }
            for condition, finding in found.items():
                alert = open_alerts.pop(condition, None)
                if alert is not None:
                    _refresh(alert, finding, now)
                    alert.occurrences += 1
                    changes.still_firing.append(alert.id)
                    continue
                alert = AlertRecord(
                    dedupe_key=condition[:400],
                    condition=condition[:300],
                    job=job,
                    kind=finding.kind,
                    severity=finding.severity,
                    subject=subject[:300],
                    summary=finding.summary,
                    details=_details(finding),
                    raised_at=now,
                    last_seen_at=now,
                    occurrences=1,
                )
                session.add(alert)
                session.flush()
                changes.raised.append(alert.id)
            for alert in open_alerts.values():
                event = alert.details is not None and alert.details.get("event")
                seen = alert.last_seen_at or alert.raised_at
                if event or seen > now - self._cooldown:
                    changes.still_firing.append(alert.id)
                    continue
                _resolve(alert, now)
                changes.resolved.append(alert.id)
        return changes

    def acknowledge(self, alert_id: int, actor: str) -> AlertRecord:
        """Record who has seen an alert. An event alert resolves when acknowledged."""
        now = self._clock()
        with self._sessions.begin() as session:
            alert = session.get(AlertRecord, alert_id)
            if alert is None:
                raise NotFoundError(f"no alert {alert_id}")
            if alert.acknowledged_at is None:
                alert.acknowledged_at = now
                alert.acknowledged_by = actor[:128]
            if alert.resolved_at is None and alert.details and alert.details.get("event"):
                _resolve(alert, now)
            session.flush()
            session.expunge(alert)
            return alert

    def alerts(
        self, *, job: str | None = None, open_only: bool = True, limit: int = 200
    ) -> list[AlertRecord]:
        with self._sessions() as session:
            query = select(AlertRecord).order_by(AlertRecord.raised_at.desc()).limit(limit)
            if job is not None:
                query = query.where(AlertRecord.job == job)
            if open_only:
                query = query.where(AlertRecord.resolved_at.is_(None))
            rows = list(session.scalars(query))
            session.expunge_all()
            return rows

    def firing(self, job: str) -> int:
        """Open alerts of one job (the exit status of ``monitors run``)."""
        return len(self.alerts(job=job))


def _refresh(alert: AlertRecord, finding: Finding, now: dt.datetime) -> None:
    alert.last_seen_at = now
    alert.summary = finding.summary
    alert.severity = finding.severity
    alert.details = _details(finding)


def _details(finding: Finding) -> dict[str, Any]:
    return {**finding.details, "event": True} if finding.event else dict(finding.details)


def _resolve(alert: AlertRecord, now: dt.datetime) -> None:
    alert.resolved_at = now
    # Free the key for the condition's next episode; the row keeps its history.
    alert.dedupe_key = f"{alert.condition or alert.dedupe_key}{RESOLVED_MARK}{alert.id}"[:400]
