"""Reading the audit trail out: JSON Lines export and a compact recent view.

Queries stream rows (``yield_per``); nothing loads the whole table into memory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from governance.db.models import AuditRecord

_COLUMNS = [c.key for c in AuditRecord.__table__.columns]


def record_dict(record: AuditRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in _COLUMNS}


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")  # exact, never exponent notation
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_json_line(record: AuditRecord) -> bytes:
    """One record as a JSON object; money as a decimal string, times in ISO 8601 UTC."""
    return orjson.dumps(record_dict(record), default=_default, option=orjson.OPT_UTC_Z) + b"\n"


def iter_records(
    sessions: sessionmaker[Session],
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    batch: int = 1000,
) -> Iterator[AuditRecord]:
    """Records in insertion order, optionally within ``[since, until)``."""
    query = select(AuditRecord).order_by(AuditRecord.id)
    if since is not None:
        query = query.where(AuditRecord.recorded_at >= since)
    if until is not None:
        query = query.where(AuditRecord.recorded_at < until)
    with sessions() as session:
        yield from session.scalars(query.execution_options(yield_per=batch))


def recent_completions(sessions: sessionmaker[Session], limit: int) -> list[AuditRecord]:
    """The newest ``limit`` completed records, oldest first."""
    query = (
        select(AuditRecord)
        .where(AuditRecord.kind == "completed")
        .order_by(AuditRecord.id.desc())
        .limit(limit)
    )
    with sessions() as session:
        return list(reversed(session.scalars(query).all()))
