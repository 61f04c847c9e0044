"""Which audit records a reader wants: `RecordFilter`, and how its tag filters are planned.

Columns filter directly. The policy's action and the PII entity types found are not
columns: they are `AuditTag` rows (written with the records by
`governance.audit.traffic.TrafficLedger`), searched through ``(tag, recorded_at)`` and
joined back on ``(chain_id, seq)``.

Two query forms, because the best plan depends on how common the tag is:

- ``(chain_id, seq) IN (SELECT ... FROM audit_tags WHERE tag = ? AND recorded_at ...)``
  reads the tag's index range and looks the records up: cost in proportion to the
  records carrying the tag. The default, and always used for counting.
- ``EXISTS (SELECT 1 FROM audit_tags WHERE tag = ? AND chain_id = ... AND seq = ...)``
  walks the records newest first and probes the tags' primary key, stopping once a page
  is full: fast for a tag most records carry, slow for a rare one.

PostgreSQL plans both forms as the same semi-join and picks the direction from its
statistics. SQLite always drives an ``IN`` from the subquery and an ``EXISTS`` from the
outer table, so for a page in time order `dense_tags` first counts (up to a limit) the
tag's records in the window, and the reader uses ``EXISTS`` for the common tags only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, exists, func, literal, select, tuple_
from sqlalchemy.orm import Session

from governance.db.models import AuditRecord
from governance.db.traffic_models import AuditTag

# A tag with more records than this in the window is walked in time order on SQLite.
DENSE_TAG_RECORDS = 10_000

_S = TypeVar("_S", bound=Select[*tuple[Any, ...]])
_EQUALS = {
    "app": AuditRecord.app,
    "team": AuditRecord.team,
    "end_user": AuditRecord.end_user,
    "model": AuditRecord.requested_model,
    "upstream": AuditRecord.upstream,
    "destination": AuditRecord.destination,
    "kind": AuditRecord.kind,
    "status": AuditRecord.status,
    "policy_version": AuditRecord.policy_version,
    "request_id": AuditRecord.request_id,
}


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """Which records: every field optional; times are ``[since, until)``."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    app: str | None = None
    team: str | None = None
    end_user: str | None = None
    model: str | None = None
    upstream: str | None = None
    destination: str | None = None
    kind: str | None = None
    status: str | None = None
    policy_version: int | None = None
    request_id: str | None = None
    action: str | None = None  # the policy's allow, route or block
    pii_entity: str | None = None  # an entity type found in the prompt (EMAIL_ADDRESS)

    @property
    def tags(self) -> list[str]:
        """The `AuditTag` tags a matching record must carry."""
        tags = []
        if self.action is not None:
            tags.append(f"action:{self.action}")
        if self.pii_entity is not None:
            tags.append(f"pii:{self.pii_entity}")
        return tags

    def apply(self, query: _S, *, walk: Collection[str] = ()) -> _S:
        """``query`` restricted to the matching records; tags in ``walk`` are tested
        record by record (``EXISTS``) rather than looked up (``IN``)."""
        r = AuditRecord
        if self.since is not None:
            query = query.where(r.recorded_at >= self.since)
        if self.until is not None:
            query = query.where(r.recorded_at < self.until)
        for name, column in _EQUALS.items():
            value = getattr(self, name)
            if value is not None:
                query = query.where(column == value)
        for tag in self.tags:
            query = query.where(self._carried(tag) if tag in walk else self._tagged(tag))
        return query

    def as_dict(self) -> dict[str, Any]:
        return {
            name: value.isoformat() if isinstance(value, dt.datetime) else value
            for name in self.__slots__
            if (value := getattr(self, name)) is not None
        }

    def _in_window(self, tagged: _S) -> _S:
        """The time bounds on the tag's own copy of ``recorded_at`` (its index's)."""
        if self.since is not None:
            tagged = tagged.where(AuditTag.recorded_at >= self.since)
        if self.until is not None:
            tagged = tagged.where(AuditTag.recorded_at < self.until)
        return tagged

    def _tagged(self, tag: str) -> ColumnElement[bool]:
        t = AuditTag
        tagged = self._in_window(select(t.chain_id, t.seq).where(t.tag == tag))
        return tuple_(AuditRecord.chain_id, AuditRecord.seq).in_(tagged)

    @staticmethod
    def _carried(tag: str) -> ColumnElement[bool]:
        t = AuditTag
        return exists().where(
            t.tag == tag, t.chain_id == AuditRecord.chain_id, t.seq == AuditRecord.seq
        )


def dense_tags(session: Session, where: RecordFilter, limit: int = DENSE_TAG_RECORDS) -> set[str]:
    """The filter's tags that more than ``limit`` records in its window carry, on SQLite
    (on PostgreSQL the planner weighs this itself: none)."""
    if session.get_bind().dialect.name != "sqlite":
        return set()
    dense = set()
    for tag in where.tags:
        some = where._in_window(select(literal(1)).where(AuditTag.tag == tag)).limit(limit + 1)
        if (session.scalar(select(func.count()).select_from(some.subquery())) or 0) > limit:
            dense.add(tag)
    return dense
