"""The policy version store: publish immutable versions, activate, roll back, shadow.

Versions are numbered 1, 2, 3… per policy name and never change once published; each
carries the SHA-256 of its canonical JSON, checked again whenever it is loaded. Which
version is active (and which runs as a shadow) lives in one ``policy_state`` row per name,
which every change locks first: publishing and activating are serialised per policy
across processes, and the proxy polls the row with one primary-key lookup. Every change
of state appends to ``policy_activations`` and writes an ``admin`` audit record on the
shared chain in the same transaction.

Changes are made by a `Principal` and need its permission: publishing ``policy:publish``,
approving, activating and rolling back ``policy:approve``, shadowing ``policy:shadow``.
With four eyes on (the default), a version can only be activated once a principal other
than its author approved it; shadowing needs no approval (it is how a version is tried
before approval). With four eyes off, publishing approves the version as its author.
Reads need no principal.

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

from governance.access import Permission, Principal
from governance.db.models import (
    PolicyActivationRecord,
    PolicyApprovalRecord,
    PolicyStateRecord,
    PolicyVersionRecord,
)
from governance.errors import NotFoundError
from governance.policy.changes import (
    ApprovalRequiredError,
    FourEyesError,
    PolicyIntegrityError,
    PolicyStateError,
    audit_change,
    record_approval,
)
from governance.policy.document import (
    canonical_json,
    describe,
)
from governance.policy.schema import Policy
from governance.policy.versions import (
    Approval,
    Change,
    HistoryEntry,
    PolicyState,
    PolicyVersion,
    approval_of,
    approvals_of,
    entry_of,
    state_of,
    version_of,
)

__all__ = [
    "Approval",
    "ApprovalRequiredError",
    "Change",
    "FourEyesError",
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


class PolicyStore:
    """Policy versions and their activation state over a session factory."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Callable[[], dt.datetime] = _now,
        four_eyes: bool = True,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._four_eyes = four_eyes

    @property
    def four_eyes(self) -> bool:
        return self._four_eyes

    # -- versions ---------------------------------------------------------------------
    def publish(
        self, policy: Policy, source: str, actor: Principal, comment: str | None = None
    ) -> PolicyVersion:
        """Store the next version of ``policy.name``, authored by ``actor``; an unchanged
        body returns the latest version instead (with ``new`` False)."""
        actor.require(Permission.POLICY_PUBLISH)
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
                found = approvals_of(session, latest.name, latest.version)
                return version_of(latest, found.get((latest.name, latest.version), ()))
            row = PolicyVersionRecord(
                name=policy.name,
                version=1 if latest is None else latest.version + 1,
                sha256=sha,
                body=body,
                source=source,
                author=actor.name,
                comment=comment,
                created_at=self._clock(),
            )
            session.add(row)
            session.flush()
            self._audit(
                session,
                "publish",
                policy.name,
                row.version,
                None if latest is None else latest.version,
                actor,
                comment,
                extra={"sha256": sha},
            )
            approvals = []
            if not self._four_eyes:
                approvals.append(
                    self._approve(session, row, actor, "four eyes off: approved on publication")
                )
            return version_of(row, approvals, new=True)

    def approve(
        self, name: str, version: int, actor: Principal, comment: str | None = None
    ) -> Approval:
        """Record ``actor``'s approval of a version (with four eyes on, ``actor`` must not
        be its author). Approving a version twice returns the first approval."""
        actor.require(Permission.POLICY_APPROVE)
        with self._sessions.begin() as session:
            self._lock(session, name)
            row = self._row(session, name, version)
            if self._four_eyes and actor.name == row.author:
                raise FourEyesError(
                    f"policy {name}@{version} was authored by {row.author}, who may not "
                    "approve it (four eyes); ask another policy approver"
                )
            earlier = session.scalars(
                select(PolicyApprovalRecord).where(
                    PolicyApprovalRecord.name == name,
                    PolicyApprovalRecord.version == version,
                    PolicyApprovalRecord.approver == actor.name,
                )
            ).first()
            if earlier is not None:
                return approval_of(earlier)
            return self._approve(session, row, actor, comment)

    def get(self, name: str, version: int | None = None) -> PolicyVersion:
        """One version (the latest when ``version`` is None), with its approvals."""
        with self._sessions() as session:
            row = self._row(session, name, version)
            found = approvals_of(session, row.name, row.version)
            return version_of(row, found.get((row.name, row.version), ()))

    def versions(self, name: str | None = None) -> list[PolicyVersion]:
        """Every version, by name then number."""
        query = select(PolicyVersionRecord).order_by(
            PolicyVersionRecord.name, PolicyVersionRecord.version
        )
        if name is not None:
            query = query.where(PolicyVersionRecord.name == name)
        with self._sessions() as session:
            rows = list(session.scalars(query))
            found = approvals_of(session, name)
        return [version_of(row, found.get((row.name, row.version), ())) for row in rows]

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

    def activate(
        self, name: str, version: int, actor: Principal, comment: str | None = None
    ) -> Change:
        """Make ``version`` the active one (nothing changes if it already is); with four
        eyes on, it needs an approval by someone other than its author."""
        actor.require(Permission.POLICY_APPROVE)
        with self._sessions.begin() as session:
            state = self._lock(session, name)
            row = self._row(session, name, version)
            if state.active_version == version:
                return Change((), state_of(state))
            self._require_approval(session, row)
            entries = self._activate(session, state, "activate", version, actor, comment)
            return Change(entries, state_of(state))

    def rollback(self, name: str, actor: Principal, comment: str | None = None) -> Change:
        """Re-activate the version that was active before the current one.

        Rollbacks undo activations in turn: after activating 1, 2, 3, a rollback makes 2
        active again and the next one 1. The target needs an approval like any activation.
        """
        actor.require(Permission.POLICY_APPROVE)
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
            self._require_approval(session, self._row(session, name, stack[-2]))
            entries = self._activate(session, state, "rollback", stack[-2], actor, comment)
            return Change(entries, state_of(state))

    def attach_shadow(
        self, name: str, version: int, actor: Principal, comment: str | None = None
    ) -> Change:
        """Evaluate ``version`` alongside the active one (recorded, never enforced); no
        approval needed."""
        actor.require(Permission.POLICY_SHADOW)
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

    def detach_shadow(self, name: str, actor: Principal, comment: str | None = None) -> Change:
        """Stop shadow evaluation (nothing changes when no shadow is attached)."""
        actor.require(Permission.POLICY_SHADOW)
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
        actor: Principal,
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
        actor: Principal,
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
            actor=actor.name,
            comment=comment,
            at=now,
        )
        session.add(row)
        self._audit(session, action, state.name, version, previous, actor, comment)
        session.flush()
        return entry_of(row)

    def _require_approval(self, session: Session, row: PolicyVersionRecord) -> None:
        if not self._four_eyes:
            return
        found = approvals_of(session, row.name, row.version).get((row.name, row.version), [])
        if version_of(row, found).approved(four_eyes=True):
            return
        raise ApprovalRequiredError(
            f"policy {row.name!r}: v{row.version} has no approval; ask a policy approver "
            f"other than {row.author} to run `tollhouse policy approve {row.name}@{row.version}`"
        )

    def _approve(
        self, session: Session, row: PolicyVersionRecord, actor: Principal, comment: str | None
    ) -> Approval:
        return record_approval(session, row, actor, comment, self._clock(), self._four_eyes)

    def _audit(
        self,
        session: Session,
        action: str,
        name: str,
        version: int | None,
        previous: int | None,
        actor: Principal,
        comment: str | None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        audit_change(session, self._clock(), action, name, version, previous, actor, comment, extra)
