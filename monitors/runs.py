"""Monitor runs in the database: one row per job run and subject, with its figures."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from governance.db import MonitorRun

STATUSES = ("running", "ok", "alerting", "insufficient_data", "failed")


class RunLog:
    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], dt.datetime]) -> None:
        self._sessions = sessions
        self._clock = clock

    def start(self, job: str, kind: str, subject: str) -> int:
        with self._sessions.begin() as session:
            run = MonitorRun(
                job=job,
                kind=kind,
                subject=subject[:300],
                started_at=self._clock(),
                status="running",
            )
            session.add(run)
            session.flush()
            return run.id

    def finish(
        self,
        run_id: int,
        status: str,
        figures: dict[str, Any] | None = None,
        *,
        report_path: str | None = None,
        error: str | None = None,
    ) -> None:
        assert status in STATUSES, status
        with self._sessions.begin() as session:
            run = session.get(MonitorRun, run_id)
            assert run is not None
            run.status = status
            run.figures = figures
            run.report_path = report_path
            run.error = error
            run.finished_at = self._clock()

    def recent(self, job: str | None = None, limit: int = 50) -> list[MonitorRun]:
        with self._sessions() as session:
            query = select(MonitorRun).order_by(MonitorRun.id.desc()).limit(limit)
            if job is not None:
                query = query.where(MonitorRun.job == job)
            rows = list(session.scalars(query))
            session.expunge_all()
            return rows
