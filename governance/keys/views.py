"""What the key service returns: created keys, authentication grants, key listings."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from governance.access.roles import Principal
from governance.db.models import ApiKey, PrincipalRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyInfo:
    """A stored key without its secret (which is never stored)."""

    id: str
    prefix: str
    principal_id: str
    principal: str  # the principal's name
    app: str | None
    team: str | None
    description: str | None
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    replaced_by: str | None
    principal_disabled: bool

    def valid_at(self, now: dt.datetime) -> bool:
        return (
            self.revoked_at is None
            and not self.principal_disabled
            and (self.expires_at is None or self.expires_at > now)
        )

    def status(self, now: dt.datetime) -> str:
        """``active``, ``expires <time>``, ``expired``, ``revoked`` or ``principal
        disabled``; a rotated key in its overlap window says what replaced it."""
        if self.revoked_at is not None:
            return "revoked"
        if self.principal_disabled:
            return "principal disabled"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        if self.expires_at is None:
            return "active"
        until = f"expires {self.expires_at:%Y-%m-%d %H:%M}"
        return f"{until}, replaced by {self.replaced_by}" if self.replaced_by else until


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key: ``secret`` is the whole key, shown once and never stored. After a
    rotation, ``replaced`` is the old key with its new (overlap) expiry."""

    principal: Principal
    secret: str
    expires_at: dt.datetime | None = None
    replaced: KeyInfo | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    """A successful key lookup: who, and until when the key is valid (None: no expiry)."""

    principal: Principal
    expires_at: dt.datetime | None


def key_info(row: ApiKey, owner: PrincipalRecord) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        prefix=row.prefix,
        principal_id=owner.id,
        principal=owner.name,
        app=owner.app,
        team=owner.team,
        description=row.description,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        replaced_by=row.replaced_by,
        principal_disabled=owner.disabled_at is not None,
    )
