"""Principals: the people and applications that hold keys and roles.

A principal may hold several roles. Principals with the ``app`` role name the application
(and team) their proxy traffic is labelled with. Principals are never deleted, only
disabled: a disabled principal's keys stop working, and its name stays in the audit
trail. Every change needs ``principals:manage`` and is recorded on the shared audit
chain in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from governance.access.roles import Permission, Principal, Role, parse_roles
from governance.audit.admin import admin_entry
from governance.audit.shared import append_shared
from governance.db.models import PrincipalRecord
from governance.errors import InvalidRequestError, NotFoundError

RESERVED_PREFIX = "local:"  # local operators (the command line without a key)
_MAX_NAME = 128


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class PrincipalExistsError(InvalidRequestError):
    """A principal of that name exists already (names are unique)."""

    status = 409
    code = "principal_exists"


@dataclass(frozen=True, slots=True, kw_only=True)
class PrincipalInfo:
    """A stored principal, as listed and shown."""

    id: str
    name: str
    roles: frozenset[Role]
    app: str | None
    team: str | None
    description: str | None
    created_at: dt.datetime
    disabled_at: dt.datetime | None

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None

    @property
    def role_names(self) -> list[str]:
        return sorted(role.value for role in self.roles)


def roles_of(names: Iterable[str]) -> frozenset[Role]:
    """The stored role names a principal holds; names this version does not know grant
    nothing (fail closed rather than refuse every key)."""
    known = {role.value for role in Role}
    return frozenset(Role(name) for name in names if name in known)


def info_of(row: PrincipalRecord) -> PrincipalInfo:
    return PrincipalInfo(
        id=row.id,
        name=row.name,
        roles=roles_of(row.roles),
        app=row.app,
        team=row.team,
        description=row.description,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


def find_principal(session: Session, name_or_id: str) -> PrincipalRecord:
    """The principal named ``name_or_id`` (or with that id); `NotFoundError` otherwise."""
    row = session.scalars(
        select(PrincipalRecord)
        .where(or_(PrincipalRecord.name == name_or_id, PrincipalRecord.id == name_or_id))
        .order_by((PrincipalRecord.name == name_or_id).desc())
        .limit(1)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"no principal named {name_or_id!r} (see `tollhouse principals list`)")
    return row


def _check_roles(
    roles: Iterable[Role | str],
    app: str | None,
    team: str | None,
    name: str,
    *,
    new: bool = True,
) -> frozenset[Role]:
    try:
        parsed = parse_roles(str(role) for role in roles)
    except ValueError as exc:
        raise InvalidRequestError(str(exc), param="roles") from None
    if not parsed:
        raise InvalidRequestError(f"principal {name!r}: give at least one role", param="roles")
    if Role.APP in parsed and not app:
        raise InvalidRequestError(
            f"principal {name!r}: the app role needs an app name (its traffic is labelled "
            "with it and policies match on it); give --app",
            param="app",
        )
    if new and Role.APP not in parsed and (app or team):
        raise InvalidRequestError(
            f"principal {name!r}: app and team label proxy traffic, so only principals "
            "with the app role have them",
            param="app",
        )
    return parsed


def _check_name(name: str) -> None:
    if not name or len(name) > _MAX_NAME or name != name.strip() or any(c.isspace() for c in name):
        raise InvalidRequestError(
            f"principal name {name!r}: use 1-{_MAX_NAME} characters without spaces",
            param="name",
        )
    if name.startswith(RESERVED_PREFIX):
        raise InvalidRequestError(
            f"principal name {name!r}: names starting with {RESERVED_PREFIX!r} are reserved "
            "for local operators",
            param="name",
        )


class PrincipalService:
    """Principal operations over a session factory; each method is its own transaction."""

    def __init__(
        self, sessions: sessionmaker[Session], clock: Callable[[], dt.datetime] = _now
    ) -> None:
        self._sessions = sessions
        self._clock = clock

    def create(
        self,
        name: str,
        roles: Iterable[Role | str],
        *,
        actor: Principal,
        app: str | None = None,
        team: str | None = None,
        description: str | None = None,
    ) -> PrincipalInfo:
        """A new principal; an ``app``-role principal must name its ``app``."""
        actor.require(Permission.PRINCIPALS_MANAGE)
        with self._sessions.begin() as session:
            return info_of(
                create_principal(session, self._clock(), name, roles, actor, app, team, description)
            )

    def list(self, include_disabled: bool = False) -> list[PrincipalInfo]:
        query = select(PrincipalRecord).order_by(PrincipalRecord.name)
        if not include_disabled:
            query = query.where(PrincipalRecord.disabled_at.is_(None))
        with self._sessions() as session:
            return [info_of(row) for row in session.scalars(query)]

    def get(self, name_or_id: str) -> PrincipalInfo:
        with self._sessions() as session:
            return info_of(find_principal(session, name_or_id))

    def disable(self, name_or_id: str, *, actor: Principal) -> PrincipalInfo:
        """Disable a principal: its keys stop working (within the proxy's key cache
        lifetime). Disabling a disabled principal changes nothing."""
        actor.require(Permission.PRINCIPALS_MANAGE)
        with self._sessions.begin() as session:
            row = find_principal(session, name_or_id)
            if row.disabled_at is None:
                row.disabled_at = self._clock()
                _audit(session, "principals.disable", actor, row, row.disabled_at)
            return info_of(row)

    def set_roles(
        self, name_or_id: str, roles: Iterable[Role | str], *, actor: Principal
    ) -> PrincipalInfo:
        """Replace a principal's roles (the ``app`` role needs the principal's app)."""
        actor.require(Permission.PRINCIPALS_MANAGE)
        with self._sessions.begin() as session:
            row = find_principal(session, name_or_id)
            before = sorted(roles_of(row.roles))
            parsed = _check_roles(roles, row.app, row.team, row.name, new=False)
            if set(parsed) != set(before):
                row.roles = sorted(role.value for role in parsed)
                _audit(
                    session,
                    "principals.roles",
                    actor,
                    row,
                    self._clock(),
                    {"previous_roles": [role.value for role in before]},
                )
            return info_of(row)


def create_principal(
    session: Session,
    now: dt.datetime,
    name: str,
    roles: Iterable[Role | str],
    actor: Principal,
    app: str | None,
    team: str | None,
    description: str | None,
) -> PrincipalRecord:
    """Insert and audit a principal inside the caller's transaction (the key service
    creates app principals on the fly). The caller has checked the actor's permission."""
    _check_name(name)
    parsed = _check_roles(roles, app, team, name)
    if session.scalar(select(PrincipalRecord.id).where(PrincipalRecord.name == name)):
        raise PrincipalExistsError(f"a principal named {name!r} exists already")
    row = PrincipalRecord(
        id=secrets.token_hex(8),
        name=name,
        roles=sorted(role.value for role in parsed),
        app=app,
        team=team,
        description=description,
        created_at=now,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # created concurrently since the check above
        raise PrincipalExistsError(f"a principal named {name!r} exists already") from exc
    _audit(session, "principals.create", actor, row, now)
    return row


def _audit(
    session: Session,
    endpoint: str,
    actor: Principal,
    row: PrincipalRecord,
    now: dt.datetime,
    extra: Mapping[str, Any] | None = None,
) -> None:
    details: dict[str, Any] = {
        "principal": row.name,
        "principal_id": row.id,
        "roles": list(row.roles),
        "app": row.app,
        "team": row.team,
        **(extra or {}),
    }
    append_shared(
        session, admin_entry(endpoint=endpoint, actor=actor, recorded_at=now, details=details)
    )
