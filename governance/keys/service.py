"""API keys look like ``th-<prefix>-<secret>``; the database holds only SHA-256(key).

Keys are 190 bits of randomness, so a fast hash is the right one (no password stretching
needed) and lookups are a single indexed equality.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from governance.db.models import ApiKey
from governance.errors import NotFoundError

KEY_SCHEME = "th"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key and the app/team it belongs to."""

    key_id: str
    prefix: str
    app: str
    team: str | None


@dataclass(frozen=True, slots=True)
class CreatedKey:
    principal: Principal
    secret: str  # shown once, never stored


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class KeyService:
    """Key operations over a session factory; each method is its own transaction."""

    def __init__(
        self, sessions: sessionmaker[Session], clock: Callable[[], dt.datetime] = _now
    ) -> None:
        self._sessions = sessions
        self._clock = clock

    def create(
        self, app: str, team: str | None = None, description: str | None = None
    ) -> CreatedKey:
        prefix = secrets.token_hex(4)
        secret = f"{KEY_SCHEME}-{prefix}-{secrets.token_urlsafe(24)}"
        row = ApiKey(
            id=secrets.token_hex(8),
            prefix=f"{KEY_SCHEME}-{prefix}",
            secret_hash=hash_secret(secret),
            app=app,
            team=team,
            description=description,
            created_at=self._clock(),
        )
        with self._sessions.begin() as session:
            session.add(row)
        return CreatedKey(_principal(row), secret)

    def authenticate(self, secret: str) -> Principal | None:
        """The principal of an active key, or None for an unknown or revoked one."""
        with self._sessions() as session:
            row = session.scalars(
                select(ApiKey).where(ApiKey.secret_hash == hash_secret(secret))
            ).one_or_none()
        if row is None or row.revoked_at is not None:
            return None
        return _principal(row)

    def list(self, include_revoked: bool = False) -> list[ApiKey]:
        with self._sessions() as session:
            query = select(ApiKey).order_by(ApiKey.created_at)
            if not include_revoked:
                query = query.where(ApiKey.revoked_at.is_(None))
            return list(session.scalars(query))

    def revoke(self, key_id_or_prefix: str) -> ApiKey:
        with self._sessions.begin() as session:
            row = session.scalars(
                select(ApiKey).where(
                    (ApiKey.id == key_id_or_prefix) | (ApiKey.prefix == key_id_or_prefix)
                )
            ).one_or_none()
            if row is None:
                raise NotFoundError(f"no key with id or prefix {key_id_or_prefix!r}")
            if row.revoked_at is None:
                row.revoked_at = self._clock()
            return row


def _principal(row: ApiKey) -> Principal:
    return Principal(key_id=row.id, prefix=row.prefix, app=row.app, team=row.team)
