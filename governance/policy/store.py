"""The policy version store: publish immutable versions, activate, roll back, shadow.

Versions are numbered 1, 2, 3… per policy name and never change once published; each
carries the SHA-256 of its canonical JSON, checked again whenever it is loaded. Which
version is active (and which runs as a shadow) lives in one ``policy_state`` row per name,
which every change locks first: publishing and activating are serialised per policy
across processes, and the proxy polls the row with one primary-key lookup. Every change
of state appends to ``policy_activations`` and writes an ``admin`` audit record in the
same transaction.

Each method is its own short transaction (the command line is the boundary).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from governance.audit.admin import admin_entry
from governance.db.models import (
    AuditRecord,
    PolicyActivationRecord,
    PolicyStateRecord,
    PolicyVersionRecord,
)
from governance.errors import InvalidRequestError, NotFoundError, TollhouseError
from governance.policy.document import (
    canonical_json,
    describe,
)
from governance.policy.schema import Policy
from governance.policy.versions import (
    Change,
    HistoryEntry,
    PolicyState,
    PolicyVersion,
    entry_of,
    state_of,
    version_of,
)

__all__ = [
    "Change",
    "HistoryEntry",
    "PolicyIntegrityError",
    "PolicyState",
    "PolicyStateError",
    "PolicyStore",
    "PolicyVersion",
]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


ActionName = Literal["activate", "rollback", "shadow_on", "shadow_off"]


class PolicyStateError(InvalidRequestError):
    """The requested change does not apply to the policy's current state."""

    code = "policy_state_conflict"


class PolicyIntegrityError(TollhouseError):
    """A stored version no longer matches its digest or no longer validates."""

    code = "policy_integrity"


class PolicyStore:
    """Policy versions and their activation state over a session factory."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Callable[[], dt.datetime] = _now,
        channel: str = "cli",
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._channel = channel  # the audit records' key_id: where admin changes come from

    # -- versions ---------------------------------------------------------------------
    def publish(
        self, policy: Policy, source: str, author: str, comment: str | None = None
    ) -> PolicyVersion:
        """Store the next version of ``policy.name``; an unchanged body returns the latest
        version instead (with ``new`` False)."""
        body = policy.model_dump(mode="json")
        sha = hashlib.sha256(canonical_json(body)).hexdigest()
        with self._sessions.begin() as session:
            self._lock(session, policy.name)
            latest = session.scalars(
                select(PolicyVersionRecord)
                .where(PolicyVersionRecord.name == policy.name)
                .order_by(PolicyVersionRecord.version.desc())
                .limit(1)
            ).one_or_none()
            if latest is not None and latest.sha256 == sha:
                return version_of(latest)
            row = PolicyVersionRecord(
                name=policy.name,
                version=1 if latest is None else latest.version + 1,
                sha256=sha,
                body=body,
                source=source,
                author=author,
                comment=comment,
                created_at=self._clock(),
            )
            session.add(row)
            self._audit(
                session,
                "publish",
                policy.name,
                row.version,
                None if latest is None else latest.version,
                author,
                comment,
                extra={"sha256": sha},
            )
            session.flush()
            return version_of(row, new=True)

    def get(self, name: str, version: int | None = None) -> PolicyVersion:
        """One version (the latest when ``version`` is None)."""
        with self._sessions() as session:
            return version_of(self._row(session, name, version))

    def versions(self, name: str | None = None) -> list[PolicyVersion]:
        """Every version, by name then number."""
        query = select(PolicyVersionRecord).order_by(
            PolicyVersionRecord.name, PolicyVersionRecord.version
        )
        if name is not None:
            query = query.where(PolicyVersionRecord.name == name)
        with self._sessions() as session:
            return [version_of(row) for row in session.scalars(query)]

    def load(self, name: str, version: int) -> Policy:
        """A stored version as a validated `Policy`, after checking its digest."""
        with self._sessions() as session:
            row = self._row(session, name, version)
        actual = hashlib.sha256(canonical_json(row.body)).hexdigest()
        if actual != row.sha256:
            raise PolicyIntegrityError(
                f"policy {name}@{version}: the stored body does not match its SHA-256 "
                f"(recorded {row.sha256[:12]}…, found {actual[:12]}…); it was altered "
                "after publication: do not use it, publish a new version"
            )
        try:
            return Policy.model_validate(row.body)
        except ValidationError as exc:
            raise PolicyIntegrityError(
                describe(f"policy {name}@{version} (stored)", exc)
                + "\n  the policy schema changed since it was published; publish a new version"
            ) from exc

    # -- state ------------------------------------------------------------------------
    def state(self, name: str) -> PolicyState:
        """The active and shadow versions: one primary-key lookup, for polling."""
        with self._sessions() as session:
            row = session.execute(
                select(
                    PolicyStateRecord.active_version,
                    PolicyStateRecord.shadow_version,
                    PolicyStateRecord.generation,
                ).where(PolicyStateRecord.name == name)
            ).one_or_none()
        if row is None:
            return PolicyState(None, None, 0)
        return PolicyState(row.active_version, row.shadow_version, row.generation)

    def history(self, name: str) -> list[HistoryEntry]:
        """Every activation change of a policy, oldest first."""
        with self._sessions() as session:
            rows = session.scalars(
                select(PolicyActivationRecord)
                .where(PolicyActivationRecord.name == name)
                .order_by(PolicyActivationRecord.id)
            )
            return [entry_of(row) for row in rows]

    def activate(self, name: str, version: int, actor: str, comment: str | None = None) -> Change:
        """Make ``version`` the active one (nothing changes if it already is)."""
        with self._sessions.begin() as session:
            state = self._lock(session, name)
            self._row(session, name, version)
            if state.active_version == version:
                return Change((), state_of(state))
            entries = self._activate(session, state, "activate", version, actor, comment)
            return Change(entries, state_of(state))

    def rollback(self, name: str, actor: str, comment: str | None = None) -> Change:
        """Re-activate the version that was active before the current one.

        Rollbacks undo activations in turn: after activating 1, 2, 3, a rollback makes 2
        active again and the next one 1.
        """
        with self._sessions.begin() as session:
            state = self._lock(session, name)
            self._row(session, name, None)
            stack: list[int] = []
            for action, version in session.execute(
                select(PolicyActivationRecord.action, PolicyActivationRecord.version)
                .where(
                    PolicyActivationRecord.name == name,
                    PolicyActivationRecord.action.in_(("activate", "rollback")),
                )
                .order_by(PolicyActivationRecord.id)
            ):
                if action == "rollback" and stack:
                    stack.pop()
                elif action == "activate" and version is not None:
                    stack.append(version)
            if len(stack) < 2:
                current = f"v{state.active_version}" if state.active_version else "no version"
                raise PolicyStateError(
                    f"policy {name!r}: nothing to roll back to ({current} is active and no "
                    "earlier activation is left to undo); activate a version with NAME@V"
                )
            entries = self._activate(session, state, "rollback", stack[-2], actor, comment)
            return Change(entries, state_of(state))

    def attach_shadow(
        self, name: str, version: int, actor: str, comment: str | None = None
    ) -> Change:
        """Evaluate ``version`` alongside the active one (recorded, never enforced)."""
        with self._sessions.begin() as session:
            state = self._lock(session, name)
            self._row(session, name, version)
            if state.active_version == version:
                raise PolicyStateError(
                    f"policy {name!r}: v{version} is the active version; shadow another one"
                )
            if state.shadow_version == version:
                return Change((), state_of(state))
            entry = self._record(session, state, "shadow_on", version, actor, comment)
            return Change((entry,), state_of(state))

    def detach_shadow(self, name: str, actor: str, comment: str | None = None) -> Change:
        """Stop shadow evaluation (nothing changes when no shadow is attached)."""
        with self._sessions.begin() as session:
            state = self._lock(session, name)
            self._row(session, name, None)
            if state.shadow_version is None:
                return Change((), state_of(state))
            entry = self._record(session, state, "shadow_off", None, actor, comment)
            return Change((entry,), state_of(state))

    # -- internals --------------------------------------------------------------------
    def _lock(self, session: Session, name: str) -> PolicyStateRecord:
        """The policy's state row, created if missing, locked until the transaction ends.

        The insert comes first so that SQLite takes its write lock before reading;
        PostgreSQL's ``ON CONFLICT DO NOTHING`` waits for a concurrent creator and
        ``FOR UPDATE`` then serialises every change of the same policy.
        """
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(
            insert(PolicyStateRecord)
            .values(name=name, generation=0, changed_at=self._clock())
            .on_conflict_do_nothing(index_elements=["name"])
        )
        return session.scalars(
            select(PolicyStateRecord)
            .where(PolicyStateRecord.name == name)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()

    def _activate(
        self,
        session: Session,
        state: PolicyStateRecord,
        action: Literal["activate", "rollback"],
        version: int,
        actor: str,
        comment: str | None,
    ) -> tuple[HistoryEntry, ...]:
        """Activate ``version``; a shadow of that same version is detached with it."""
        entries = [self._record(session, state, action, version, actor, comment)]
        if state.shadow_version == version:
            entries.append(
                self._record(session, state, "shadow_off", None, actor, f"v{version} is now active")
            )
        return tuple(entries)

    def _row(self, session: Session, name: str, version: int | None) -> PolicyVersionRecord:
        query = select(PolicyVersionRecord).where(PolicyVersionRecord.name == name)
        if version is None:
            query = query.order_by(PolicyVersionRecord.version.desc()).limit(1)
        else:
            query = query.where(PolicyVersionRecord.version == version)
        row = session.scalars(query).one_or_none()
        if row is not None:
            return row
        known = session.scalar(
            select(func.max(PolicyVersionRecord.version)).where(PolicyVersionRecord.name == name)
        )
        if known is None:
            raise NotFoundError(f"no policy named {name!r} has been published")
        raise NotFoundError(f"policy {name!r} has no version {version} (latest is {known})")

    def _record(
        self,
        session: Session,
        state: PolicyStateRecord,
        action: ActionName,
        version: int | None,
        actor: str,
        comment: str | None,
    ) -> HistoryEntry:
        """Apply one change to the locked state row, append it to history, audit it."""
        now = self._clock()
        if action in ("activate", "rollback"):
            previous = state.active_version
            state.active_version = version
        else:
            previous = state.shadow_version
            state.shadow_version = version
        state.generation += 1
        state.changed_at = now
        row = PolicyActivationRecord(
            name=state.name,
            action=action,
            version=version,
            previous_version=previous,
            actor=actor,
            comment=comment,
            at=now,
        )
        session.add(row)
        self._audit(session, action, state.name, version, previous, actor, comment)
        session.flush()
        return entry_of(row)

    def _audit(
        self,
        session: Session,
        action: str,
        name: str,
        version: int | None,
        previous: int | None,
        actor: str,
        comment: str | None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        entry = admin_entry(
            endpoint=f"policy.{action}",
            channel=self._channel,
            recorded_at=self._clock(),
            policy_name=name,
            policy_version=version if version is not None else previous,
            details={
                "action": action,
                "version": version,
                "previous_version": previous,
                "actor": actor,
                "comment": comment,
                **(extra or {}),
            },
        )
        session.add(AuditRecord(**entry.as_row()))
