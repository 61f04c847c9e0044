"""What the policy store returns: versions, state, history entries, changes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from governance.db.models import PolicyActivationRecord, PolicyStateRecord, PolicyVersionRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyVersion:
    """A published version. ``new`` is True only on the `PolicyStore.publish` call that
    created it (False when an identical body was already the latest version)."""

    name: str
    version: int
    sha256: str
    body: dict[str, Any]
    source: str
    author: str
    comment: str | None
    created_at: dt.datetime
    new: bool = False

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


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


def version_of(row: PolicyVersionRecord, *, new: bool = False) -> PolicyVersion:
    return PolicyVersion(
        name=row.name,
        version=row.version,
        sha256=row.sha256,
        body=row.body,
        source=row.source,
        author=row.author,
        comment=row.comment,
        created_at=row.created_at,
        new=new,
    )


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
