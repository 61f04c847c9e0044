"""Erasure of audit content that keeps the trail verifiable: forget and purge.

Neither touches an ``audit_records`` row. Content lives in ``audit_content`` and each
record's ``content_digest`` stays in its chain, so after either operation every chain
still verifies; the operation itself is an ``admin`` record on the shared chain, which
tells the verifier which missing content is explained (docs/audit-format.md).

- forget (right to erasure): destroys the data keys of an app or an end user, so their
  encrypted (``full``) content can never be read again, and deletes their plaintext
  (``redacted``) content.
- purge (retention): deletes all content of records written before a cut-off.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import CursorResult, and_, delete, exists, update
from sqlalchemy.orm import Session, sessionmaker

from governance.access import Permission, Principal
from governance.audit.admin import admin_entry
from governance.audit.shared import append_shared
from governance.db.models import AuditContent, AuditDataKey, AuditRecord
from governance.errors import InvalidRequestError


@dataclass(frozen=True, slots=True)
class Forgotten:
    keys_destroyed: int
    plaintext_deleted: int


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Retention:
    """Forget and purge over a session factory; each call is one transaction."""

    def __init__(
        self, sessions: sessionmaker[Session], clock: Callable[[], dt.datetime] = _now
    ) -> None:
        self._sessions = sessions
        self._clock = clock

    def forget(
        self, actor: Principal, *, app: str | None = None, end_user: str | None = None
    ) -> Forgotten:
        """Make the content of ``app`` or ``end_user`` unreadable for good."""
        actor.require(Permission.AUDIT_MANAGE)
        if (app is None) == (end_user is None):
            raise InvalidRequestError("forget needs exactly one of an app or an end user")
        key_match = (
            AuditDataKey.app == app if app is not None else AuditDataKey.end_user == end_user
        )
        record_match = (
            AuditRecord.app == app if app is not None else AuditRecord.end_user == end_user
        )
        now = self._clock()
        with self._sessions.begin() as session:
            destroyed = _rowcount(
                session.execute(
                    update(AuditDataKey)
                    .where(key_match, AuditDataKey.wrapped.is_not(None))
                    .values(wrapped=None, destroyed_at=now)
                )
            )
            plaintext = _rowcount(
                session.execute(
                    delete(AuditContent).where(
                        AuditContent.encryption == "none",
                        exists().where(
                            AuditRecord.chain_id == AuditContent.chain_id,
                            AuditRecord.seq == AuditContent.seq,
                            record_match,
                        ),
                    )
                )
            )
            append_shared(
                session,
                admin_entry(
                    endpoint="audit.forget",
                    actor=actor,
                    recorded_at=now,
                    details={
                        "app": app,
                        "end_user": end_user,
                        "keys_destroyed": destroyed,
                        "plaintext_deleted": plaintext,
                    },
                ),
            )
        return Forgotten(destroyed, plaintext)

    def purge(self, actor: Principal, older_than: dt.timedelta) -> int:
        """Delete the content of every record written before now - ``older_than``."""
        actor.require(Permission.AUDIT_MANAGE)
        if older_than <= dt.timedelta(0):
            raise InvalidRequestError("--older-than must be a positive duration")
        now = self._clock()
        cutoff = now - older_than
        with self._sessions.begin() as session:
            deleted = _rowcount(
                session.execute(
                    delete(AuditContent).where(
                        exists().where(
                            and_(
                                AuditRecord.chain_id == AuditContent.chain_id,
                                AuditRecord.seq == AuditContent.seq,
                                AuditRecord.recorded_at < cutoff,
                            )
                        )
                    )
                )
            )
            append_shared(
                session,
                admin_entry(
                    endpoint="audit.purge",
                    actor=actor,
                    recorded_at=now,
                    details={"older_than": cutoff.isoformat(), "content_deleted": deleted},
                ),
            )
        return deleted


def _rowcount(result: object) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)
