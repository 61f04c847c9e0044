"""API keys look like ``th-<prefix>-<secret>``; the database holds the prefix and
SHA-256 of the whole key.

Keys carry 190 bits of randomness, so a fast hash is the right one (no password
stretching needed). A presented key is looked up by its visible prefix (a unique index)
and its hash compared in constant time, so neither the lookup nor the comparison tells
an attacker how much of a guessed secret was right. A key works while it is not revoked,
not expired and its principal is not disabled; rotation issues a new key and lets the
old one overlap for a while. Every change needs ``principals:manage`` and is recorded
on the shared audit chain in the same transaction; secrets never appear in the records.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from governance.access.principals import (
    PrincipalExistsError,
    create_principal,
    find_principal,
    roles_of,
)
from governance.access.roles import Permission, Principal, Role
from governance.audit.admin import admin_entry
from governance.audit.shared import append_shared
from governance.db.models import ApiKey, PrincipalRecord
from governance.errors import InvalidRequestError, NotFoundError
from governance.keys.views import CreatedKey, Grant, KeyInfo, key_info

KEY_SCHEME = "th"
_MAX_PREFIX = 24
_NO_MATCH = "0" * 64  # compared against when no key has the presented prefix
_APP_PRINCIPAL = "created with its first key (keys create --app)"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def prefix_of(key: str) -> str | None:
    """The visible prefix (``th-1a2b3c4d``) of a key or of a prefix; None if malformed."""
    scheme, _, rest = key.partition("-")
    body, _, _ = rest.partition("-")
    if scheme != KEY_SCHEME or not body or len(body) > _MAX_PREFIX:
        return None
    return f"{KEY_SCHEME}-{body}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class KeyStateError(InvalidRequestError):
    """The key cannot take this change (revoked, expired, already rotated)."""

    code = "key_state"


class KeyService:
    """Key operations over a session factory; each method is its own transaction."""

    def __init__(
        self, sessions: sessionmaker[Session], clock: Callable[[], dt.datetime] = _now
    ) -> None:
        self._sessions = sessions
        self._clock = clock

    # -- authentication ---------------------------------------------------------------
    def lookup(self, key: str) -> Grant | None:
        """The principal a key acts for and until when the key is valid, or None for
        an unknown, wrong, revoked or expired key or a disabled principal."""
        prefix = prefix_of(key)
        presented = hash_secret(key)
        found: tuple[ApiKey, PrincipalRecord] | None = None
        if prefix is not None and len(key) > len(prefix) + 1:
            with self._sessions() as session:
                row = session.execute(
                    select(ApiKey, PrincipalRecord)
                    .join(PrincipalRecord, ApiKey.principal_id == PrincipalRecord.id)
                    .where(ApiKey.prefix == prefix)
                ).one_or_none()
            found = None if row is None else (row[0], row[1])
        stored = found[0].secret_hash if found is not None else _NO_MATCH
        if not hmac.compare_digest(stored.encode(), presented.encode()) or found is None:
            return None
        key_row, owner = found
        now = self._clock()
        if key_row.revoked_at is not None or owner.disabled_at is not None:
            return None
        if key_row.expires_at is not None and key_row.expires_at <= now:
            return None
        return Grant(_principal(key_row, owner), key_row.expires_at)

    def authenticate(self, key: str) -> Principal | None:
        """The principal of a valid key (see `lookup`), or None."""
        grant = self.lookup(key)
        return None if grant is None else grant.principal

    # -- changes ----------------------------------------------------------------------
    def create(
        self,
        principal: str,
        description: str | None = None,
        expires_at: dt.datetime | None = None,
        *,
        actor: Principal,
    ) -> CreatedKey:
        """A new key for the principal named ``principal`` (or with that id)."""
        actor.require(Permission.PRINCIPALS_MANAGE)
        now = self._clock()
        _check_expiry(expires_at, now)
        with self._sessions.begin() as session:
            owner = find_principal(session, principal)
            return self._issue(session, owner, description, expires_at, now, actor)

    def create_for_app(
        self,
        app: str,
        team: str | None = None,
        description: str | None = None,
        *,
        expires_at: dt.datetime | None = None,
        actor: Principal,
    ) -> CreatedKey:
        """A key for application ``app``: reuses its ``app`` principal (named ``app``,
        or ``app@team`` where one app has several teams) or creates one."""
        actor.require(Permission.PRINCIPALS_MANAGE)
        now = self._clock()
        _check_expiry(expires_at, now)
        with self._sessions.begin() as session:
            owner = _app_principal(session, app, team)
            if owner is None:
                taken = session.scalar(
                    select(PrincipalRecord.id).where(PrincipalRecord.name == app)
                )
                name = app if taken is None else f"{app}@{team or '-'}"
                try:
                    owner = create_principal(
                        session, now, name, [Role.APP], actor, app, team, _APP_PRINCIPAL
                    )
                except PrincipalExistsError as exc:
                    raise KeyStateError(
                        f"cannot create a principal for app {app!r}: {exc.message}; create "
                        "one with `tollhouse principals create` and use --principal"
                    ) from exc
            return self._issue(session, owner, description, expires_at, now, actor)

    def rotate(
        self,
        key: str,
        overlap: dt.timedelta,
        *,
        expires_at: dt.datetime | None = None,
        actor: Principal,
    ) -> CreatedKey:
        """A new key for the same principal; the old key keeps working until
        now + ``overlap`` (or its own expiry, if sooner) and names its replacement.

        Without ``expires_at``, a key that had a lifetime passes the same lifetime on.
        """
        actor.require(Permission.PRINCIPALS_MANAGE)
        if overlap < dt.timedelta(0):
            raise InvalidRequestError("the overlap cannot be negative", param="overlap")
        now = self._clock()
        _check_expiry(expires_at, now)
        with self._sessions.begin() as session:
            old = _find_key(session, key)
            label = f"key {old.id} ({old.prefix})"
            if old.revoked_at is not None:
                raise KeyStateError(f"{label} is revoked; create a new key instead")
            if old.replaced_by is not None:
                raise KeyStateError(f"{label} was already rotated; rotate {old.replaced_by}")
            if old.expires_at is not None and old.expires_at <= now:
                raise KeyStateError(f"{label} has expired; create a new key instead")
            if expires_at is None and old.expires_at is not None:
                expires_at = now + (old.expires_at - old.created_at)
            owner = session.get_one(PrincipalRecord, old.principal_id)
            old_until = now + overlap
            if old.expires_at is not None:
                old_until = min(old.expires_at, old_until)
            new_row, secret = self._insert(session, owner, old.description, expires_at, now)
            changed = session.execute(
                update(ApiKey)
                .where(
                    ApiKey.id == old.id, ApiKey.replaced_by.is_(None), ApiKey.revoked_at.is_(None)
                )
                .values(expires_at=old_until, replaced_by=new_row.id)
                .returning(ApiKey.id)
                .execution_options(synchronize_session=False)
            ).one_or_none()
            if changed is None:
                raise KeyStateError(f"{label} was rotated or revoked meanwhile; list the keys")
            self._audit(
                session,
                "keys.rotate",
                actor,
                owner,
                old,
                now,
                {
                    "old_expires_at": _iso(old_until),
                    "new_key_id": new_row.id,
                    "new_prefix": new_row.prefix,
                    "expires_at": _iso(expires_at),
                    "overlap_s": overlap.total_seconds(),
                },
            )
            session.expire(old)
            session.refresh(old)
            return CreatedKey(_principal(new_row, owner), secret, expires_at, key_info(old, owner))

    def revoke(self, key: str, *, actor: Principal) -> KeyInfo:
        """Revoke a key by id or visible prefix (revoking twice changes nothing)."""
        actor.require(Permission.PRINCIPALS_MANAGE)
        with self._sessions.begin() as session:
            row = _find_key(session, key)
            owner = session.get_one(PrincipalRecord, row.principal_id)
            if row.revoked_at is None:
                row.revoked_at = self._clock()
                self._audit(session, "keys.revoke", actor, owner, row, row.revoked_at)
            return key_info(row, owner)

    # -- reads ------------------------------------------------------------------------
    def list(self, include_revoked: bool = False, principal: str | None = None) -> list[KeyInfo]:
        """Keys, oldest first; without ``include_revoked`` only those not revoked and
        not expired. Never secrets."""
        query = (
            select(ApiKey, PrincipalRecord)
            .join(PrincipalRecord, ApiKey.principal_id == PrincipalRecord.id)
            .order_by(ApiKey.created_at, ApiKey.id)
        )
        if not include_revoked:
            query = query.where(
                ApiKey.revoked_at.is_(None),
                or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > self._clock()),
            )
        with self._sessions() as session:
            if principal is not None:
                query = query.where(ApiKey.principal_id == find_principal(session, principal).id)
            return [key_info(k, p) for k, p in session.execute(query)]

    # -- internals --------------------------------------------------------------------
    def _issue(
        self,
        session: Session,
        owner: PrincipalRecord,
        description: str | None,
        expires_at: dt.datetime | None,
        now: dt.datetime,
        actor: Principal,
    ) -> CreatedKey:
        if owner.disabled_at is not None:
            raise KeyStateError(f"principal {owner.name!r} is disabled; it gets no new keys")
        row, secret = self._insert(session, owner, description, expires_at, now)
        self._audit(
            session, "keys.create", actor, owner, row, now, {"expires_at": _iso(expires_at)}
        )
        return CreatedKey(_principal(row, owner), secret, expires_at)

    def _insert(
        self,
        session: Session,
        owner: PrincipalRecord,
        description: str | None,
        expires_at: dt.datetime | None,
        now: dt.datetime,
    ) -> tuple[ApiKey, str]:
        prefix = f"{KEY_SCHEME}-{secrets.token_hex(4)}"
        secret = f"{prefix}-{secrets.token_urlsafe(24)}"
        row = ApiKey(
            id=secrets.token_hex(8),
            principal_id=owner.id,
            prefix=prefix,
            secret_hash=hash_secret(secret),
            description=description,
            created_at=now,
            expires_at=expires_at,
        )
        session.add(row)
        session.flush()
        return row, secret

    def _audit(
        self,
        session: Session,
        endpoint: str,
        actor: Principal,
        owner: PrincipalRecord,
        row: ApiKey,
        now: dt.datetime,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        details: dict[str, Any] = {
            "principal": owner.name,
            "principal_id": owner.id,
            "key_id": row.id,
            "prefix": row.prefix,
            **(extra or {}),
        }
        entry = admin_entry(endpoint=endpoint, actor=actor, recorded_at=now, details=details)
        append_shared(session, entry)


def _principal(row: ApiKey, owner: PrincipalRecord) -> Principal:
    return Principal(
        key_id=row.id,
        prefix=row.prefix,
        app=owner.app,
        team=owner.team,
        principal_id=owner.id,
        name=owner.name,
        roles=roles_of(owner.roles),
    )


def _find_key(session: Session, key: str) -> ApiKey:
    """A key by id, visible prefix, or (its prefix taken from) the whole key."""
    prefix = prefix_of(key) or key
    row = session.scalars(
        select(ApiKey).where(or_(ApiKey.id == key, ApiKey.prefix == prefix))
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"no key with id or prefix {prefix!r}")
    return row


def _app_principal(session: Session, app: str, team: str | None) -> PrincipalRecord | None:
    """The enabled ``app`` principal for (app, team): named ``app`` or ``app@team``;
    without a team, the one named ``app`` whatever its team."""
    rows = session.scalars(
        select(PrincipalRecord).where(
            PrincipalRecord.app == app,
            PrincipalRecord.name.in_((app, f"{app}@{team or '-'}")),
        )
    ).all()
    for row in sorted(rows, key=lambda r: r.name != app):
        if Role.APP.value in row.roles and (team is None or row.team == team):
            if row.disabled_at is not None:
                raise KeyStateError(f"principal {row.name!r} is disabled; it gets no new keys")
            return row
    return None


def _check_expiry(expires_at: dt.datetime | None, now: dt.datetime) -> None:
    if expires_at is not None and expires_at <= now:
        raise InvalidRequestError("a key's expiry must lie in the future", param="expires_at")


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat()
