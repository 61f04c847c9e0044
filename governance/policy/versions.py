"""What the policy store returns: versions, approvals, state, history entries, changes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.db.models import (
    PolicyActivationRecord,
    PolicyApprovalRecord,
    PolicyStateRecord,
    PolicyVersionRecord,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Approval:
    """One approval of a version. ``new`` is True only on the `PolicyStore.approve` call
    that recorded it (False when that approver had approved the version before)."""

    name: str
    version: int
    approver: str
    comment: str | None
    at: dt.datetime
    new: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyVersion:
    """A published version and its approvals. ``new`` is True only on the
    `PolicyStore.publish` call that created it (False when an identical body was
    already the latest version)."""

    name: str
    version: int
    sha256: str
    body: dict[str, Any]
    source: str
    author: str
    comment: str | None
    created_at: dt.datetime
    approvals: tuple[Approval, ...] = ()
    new: bool = False

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def approved_by(self) -> tuple[str, ...]:
        """Who approved the version, in order (the author, where four eyes was off)."""
        return tuple(a.approver for a in self.approvals)

    def approved(self, *, four_eyes: bool = True) -> bool:
        """Whether the version may be activated: with four eyes, someone other than its
        author approved it; without, any approval counts."""
        return any(not four_eyes or a.approver != self.author for a in self.approvals)


@dataclass(frozen=True, slots=True)
class PolicyState:
    """Which version of a policy is active and which is shadowed; ``generation`` grows by
    one with every change, so a poller compares one integer."""

    active: int | None
    shadow: int | None
    generation: int


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEntry:
    """One row of the activation history."""

    id: int
    name: str
    action: str
    version: int | None
    previous_version: int | None
    actor: str
    comment: str | None
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class Change:
    """The outcome of a state change: the history entries written (none when the request
    was already satisfied) and the state afterwards."""

    entries: tuple[HistoryEntry, ...]
    state: PolicyState

    @property
    def changed(self) -> bool:
        return bool(self.entries)


# -- from rows ---------------------------------------------------------------------------


def version_of(
    row: PolicyVersionRecord, approvals: Iterable[Approval] = (), *, new: bool = False
) -> PolicyVersion:
    return PolicyVersion(
        name=row.name,
        version=row.version,
        sha256=row.sha256,
        body=row.body,
        source=row.source,
        author=row.author,
        comment=row.comment,
        created_at=row.created_at,
        approvals=tuple(approvals),
        new=new,
    )


def approval_of(row: PolicyApprovalRecord, *, new: bool = False) -> Approval:
    return Approval(
        name=row.name,
        version=row.version,
        approver=row.approver,
        comment=row.comment,
        at=row.at,
        new=new,
    )


def approvals_of(
    session: Session, name: str | None, version: int | None = None
) -> dict[tuple[str, int], list[Approval]]:
    """Approvals by (name, version), oldest first: of one version, of every version of
    a policy, or (``name`` None) of every policy."""
    query = select(PolicyApprovalRecord).order_by(PolicyApprovalRecord.id)
    if name is not None:
        query = query.where(PolicyApprovalRecord.name == name)
    if version is not None:
        query = query.where(PolicyApprovalRecord.version == version)
    found: dict[tuple[str, int], list[Approval]] = {}
    for row in session.scalars(query):
        found.setdefault((row.name, row.version), []).append(approval_of(row))
    return found


def entry_of(row: PolicyActivationRecord) -> HistoryEntry:
    return HistoryEntry(
        id=row.id,
        name=row.name,
        action=row.action,
        version=row.version,
        previous_version=row.previous_version,
        actor=row.actor,
        comment=row.comment,
        at=row.at,
    )


def state_of(row: PolicyStateRecord) -> PolicyState:
    return PolicyState(row.active_version, row.shadow_version, row.generation)
