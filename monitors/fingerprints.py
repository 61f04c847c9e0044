"""Passive model-change watch: the identity each upstream model answers with.

Every completed, successful audit record names the upstream and deployment model that
served it, and what the upstream said it was: the returned ``model`` string and its
``system_fingerprint``, plus the response headers an upstream is configured to watch
(``upstreams[].fingerprint_headers``, kept with the attempt). The watch folds the
records written since its last run into ``model_fingerprints`` (one row per distinct
identity) and reports each identity that is new for a model which already had one:
the provider changed something behind the same API name. A model's first identity is
its baseline and reports nothing.

A record without a ``system_fingerprint`` whose model string is already known is not a
change: providers omit the field now and then.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from governance.db import AuditRecord, ModelFingerprint, MonitorCursor
from governance.db.types import canonical_json_text
from monitors.alerts import Finding

# Records can commit a little out of time order (several writers); re-reading this much
# before the cursor catches them. Folding is idempotent, so re-reading costs nothing else.
OVERLAP = dt.timedelta(minutes=5)
NO_HEADERS = ""


@dataclass(frozen=True)
class Identity:
    response_model: str
    system_fingerprint: str
    headers: dict[str, str]

    def describe(self) -> str:
        fingerprint = self.system_fingerprint or "(none)"
        text = f"model {self.response_model or '(none)'!r}, system_fingerprint {fingerprint!r}"
        if self.headers:
            text += ", " + ", ".join(f"{k}: {v!r}" for k, v in sorted(self.headers.items()))
        return text


@dataclass
class FingerprintScan:
    """What one run saw: groups folded, records read, and the changes found per
    ``upstream/model`` subject."""

    since: dt.datetime | None
    until: dt.datetime | None
    records: int = 0
    identities: int = 0
    changes: dict[str, list[Finding]] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "records": self.records,
            "identities": self.identities,
            "changes": [f.details for found in self.changes.values() for f in found],
        }


def watch_fingerprints(
    sessions: sessionmaker[Session],
    *,
    job: str,
    clock: Callable[[], dt.datetime],
    upstreams: Collection[str] = (),
) -> FingerprintScan:
    """Fold new audit records into the fingerprint table; return the changes found."""
    now = clock()
    with sessions.begin() as session:
        cursor = session.get(MonitorCursor, job)
        position = cursor.position if cursor is not None else None
        groups = _groups(session, position, upstreams)
        since = position - OVERLAP if position is not None else None
        scan = FingerprintScan(since=since, until=None)
        for row in groups:
            scan.records += row.fresh
            scan.identities += 1
            scan.until = max(scan.until or row.last_seen, row.last_seen)
            finding = _fold(session, job, row)
            if finding is not None:
                scan.changes.setdefault(finding.subject, []).append(finding)
        position = scan.until or position
        if position is not None:
            if cursor is None:
                session.add(MonitorCursor(job=job, position=position, updated_at=now))
            else:
                cursor.position = max(cursor.position, position)
                cursor.updated_at = now
        return scan


@dataclass
class _Group:
    """One identity seen in the records read: where, when first and last, how often."""

    upstream: str
    deployment_model: str
    response_model: str
    system_fingerprint: str
    headers: dict[str, str]
    first_seen: dt.datetime
    last_seen: dt.datetime
    first_request_id: str
    requests: int = 0
    fresh: int = 0  # records after the cursor itself (the overlap is not counted twice)

    @property
    def headers_digest(self) -> str:
        if not self.headers:
            return NO_HEADERS
        return hashlib.sha256(canonical_json_text(self.headers).encode()).hexdigest()


def _groups(
    session: Session, position: dt.datetime | None, upstreams: Collection[str]
) -> list[_Group]:
    """Identities in the records after ``position`` (less the overlap), oldest first so
    that a model's first identity becomes its baseline."""
    query = (
        select(
            AuditRecord.upstream,
            AuditRecord.deployment_model,
            AuditRecord.response_model,
            AuditRecord.system_fingerprint,
            AuditRecord.attempts,
            AuditRecord.recorded_at,
            AuditRecord.request_id,
        )
        .where(
            AuditRecord.kind == "completed",
            AuditRecord.status == "ok",
            AuditRecord.upstream.is_not(None),
            AuditRecord.deployment_model.is_not(None),
        )
        .order_by(AuditRecord.recorded_at)
        .execution_options(yield_per=2000)
    )
    if position is not None:
        query = query.where(AuditRecord.recorded_at > position - OVERLAP)
    if upstreams:
        query = query.where(AuditRecord.upstream.in_(list(upstreams)))
    groups: dict[tuple[str, ...], _Group] = {}
    for row in session.execute(query):
        headers = _watched_headers(row.attempts)
        key = (
            row.upstream,
            row.deployment_model,
            row.response_model or "",
            row.system_fingerprint or "",
            canonical_json_text(headers),
        )
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(
                upstream=row.upstream,
                deployment_model=row.deployment_model,
                response_model=row.response_model or "",
                system_fingerprint=row.system_fingerprint or "",
                headers=headers,
                first_seen=row.recorded_at,
                last_seen=row.recorded_at,
                first_request_id=row.request_id,
            )
        group.last_seen = row.recorded_at
        group.requests += 1
        if position is None or row.recorded_at > position:
            group.fresh += 1
    return list(groups.values())


def _watched_headers(attempts: list[dict[str, Any]] | None) -> dict[str, str]:
    """The watched headers of the attempt that succeeded (the last one)."""
    if not attempts:
        return {}
    headers = attempts[-1].get("headers")
    return {str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {}


def _fold(session: Session, job: str, row: _Group) -> Finding | None:
    key = (row.upstream, row.deployment_model, row.response_model, row.system_fingerprint)
    existing = session.get(ModelFingerprint, (*key, row.headers_digest))
    if existing is not None:
        existing.last_seen = max(existing.last_seen, row.last_seen)
        existing.first_seen = min(existing.first_seen, row.first_seen)
        existing.requests += row.fresh
        return None
    known = list(
        session.scalars(
            select(ModelFingerprint)
            .where(
                ModelFingerprint.upstream == row.upstream,
                ModelFingerprint.deployment_model == row.deployment_model,
            )
            .order_by(ModelFingerprint.last_seen.desc())
        )
    )
    session.add(
        ModelFingerprint(
            upstream=row.upstream,
            deployment_model=row.deployment_model,
            response_model=row.response_model,
            system_fingerprint=row.system_fingerprint,
            headers_digest=row.headers_digest,
            headers=row.headers or None,
            first_seen=row.first_seen,
            last_seen=row.last_seen,
            first_request_id=row.first_request_id,
            requests=row.requests,
        )
    )
    session.flush()
    if not known:
        return None
    new = Identity(row.response_model, row.system_fingerprint, row.headers)
    if (
        not new.system_fingerprint
        and not new.headers
        and any(k.response_model == new.response_model for k in known)
    ):
        return None
    latest = known[0]
    previous = Identity(latest.response_model, latest.system_fingerprint, latest.headers or {})
    subject = f"{row.upstream}/{row.deployment_model}"
    return Finding(
        condition=(
            f"{job}:fingerprint:{subject}:{new.response_model}|{new.system_fingerprint}|"
            f"{row.headers_digest[:16]}"
        ),
        kind="model_change.fingerprint",
        severity="info",
        subject=subject,
        summary=f"{subject} now answers as {new.describe()} (was {previous.describe()})",
        details={
            "upstream": row.upstream,
            "model": row.deployment_model,
            "response_model": new.response_model,
            "system_fingerprint": new.system_fingerprint,
            "headers": new.headers,
            "previous_response_model": previous.response_model,
            "previous_system_fingerprint": previous.system_fingerprint,
            "previous_headers": previous.headers,
            "first_seen": row.first_seen.isoformat(),
            "first_request_id": row.first_request_id,
        },
        event=True,
    )
