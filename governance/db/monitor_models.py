"""Tables of the monitors: alerts, job runs, canary batches and baselines, model fingerprints.

Monitor jobs read the audit trail and write only here; the proxy writes only budget
alerts. Every run keeps its figures, so a chart of a signal over time is a query.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from governance.db.models import Base, BigId
from governance.db.types import UTCDateTime


class AlertRecord(Base):
    """Something an operator should know about: a budget threshold crossed, a drifted
    traffic window, a changed model.

    ``dedupe_key`` makes raising idempotent: the same condition is one open alert however
    many processes or runs notice it. Budget alerts put their period in the key. Monitor
    alerts use ``condition`` as the key while open and move the key aside when they
    resolve (``<condition>@resolved:<id>``), so the next episode is a new row and the
    history stays. ``notified_state`` is what the sinks were last told (``firing`` or
    ``resolved``); a notification that failed is retried on the next run.
    """

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_condition", "condition", "raised_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(400), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    raised_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    # Added by 0005 (monitors); NULL on budget alerts.
    condition: Mapped[str | None] = mapped_column(String(300))
    job: Mapped[str | None] = mapped_column(String(128))
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    notified_state: Mapped[str | None] = mapped_column(String(16))
    notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class MonitorRun(Base):
    """One run of one monitor job over one subject (an app/model/upstream, an upstream).

    ``status``: ``ok``, ``alerting`` (some signal fired), ``insufficient_data`` (a window
    below its minimum size; nothing concluded), ``failed`` (``error`` says why).
    ``figures`` is the run's JSON result; ``report_path`` the Evidently HTML report.
    """

    __tablename__ = "monitor_runs"
    __table_args__ = (Index("ix_monitor_runs_job", "job", "subject", "started_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # drift | canary | fingerprints
    subject: Mapped[str] = mapped_column(String(300))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(24))
    figures: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    report_path: Mapped[str | None] = mapped_column(String(1024))
    error: Mapped[str | None] = mapped_column(Text)


class CanarySample(Base):
    """One canary completion: a prompt of the canary set, one sample of it, as the
    watched model answered through the proxy. ``batch`` is ``baseline``, ``check`` or
    ``confirm``; ``token_logprobs``/``top_logprobs`` are kept when the upstream returns them.
    """

    __tablename__ = "canary_samples"
    __table_args__ = (Index("ix_canary_samples_run", "run_id", "prompt_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("monitor_runs.id"))
    batch: Mapped[str] = mapped_column(String(16))
    prompt_id: Mapped[str] = mapped_column(String(64))
    sample_index: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(64))
    completion: Mapped[str] = mapped_column(Text)
    correct: Mapped[bool | None] = mapped_column(Boolean)
    token_logprobs: Mapped[list[float] | None] = mapped_column(JSON(none_as_null=True))
    top_logprobs: Mapped[list[dict[str, float]] | None] = mapped_column(JSON(none_as_null=True))
    response_model: Mapped[str | None] = mapped_column(String(256))
    system_fingerprint: Mapped[str | None] = mapped_column(String(256))


class CanaryBaseline(Base):
    """The run whose ``baseline`` batch a canary job compares against, per subject.

    Set on the first run, or again by ``tollhouse monitors rebaseline`` once an operator
    has accepted a change.
    """

    __tablename__ = "canary_baselines"

    job: Mapped[str] = mapped_column(String(128), primary_key=True)
    subject: Mapped[str] = mapped_column(String(300), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("monitor_runs.id"))
    set_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    set_by: Mapped[str] = mapped_column(String(128))


class ModelFingerprint(Base):
    """One distinct identity an upstream model answered with: the returned ``model``
    string, ``system_fingerprint`` and the watched response headers (``''`` when absent,
    so the key conflicts properly). A new row for a model that already had one is a
    silent model change.
    """

    __tablename__ = "model_fingerprints"

    upstream: Mapped[str] = mapped_column(String(128), primary_key=True)
    deployment_model: Mapped[str] = mapped_column(String(256), primary_key=True)
    response_model: Mapped[str] = mapped_column(String(256), primary_key=True)
    system_fingerprint: Mapped[str] = mapped_column(String(256), primary_key=True)
    headers_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    headers: Mapped[dict[str, str] | None] = mapped_column(JSON(none_as_null=True))
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    first_request_id: Mapped[str] = mapped_column(String(64))
    requests: Mapped[int] = mapped_column(BigInteger)


class MonitorCursor(Base):
    """How far a job that scans the audit trail incrementally has read."""

    __tablename__ = "monitor_cursors"

    job: Mapped[str] = mapped_column(String(128), primary_key=True)
    position: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
