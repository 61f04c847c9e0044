"""Who is looking at the dashboard, and which pages they may open.

A person signs in with a principal's key (the same keys and roles as the admin API and
the command line) or, when configured, through single sign-on: the identity token's
claim names the principal. The principal is resolved again on every rerun, so revoking
the key or disabling the principal ends the session at the next click.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from governance.access import Permission, Principal
from governance.access.principals import roles_of
from governance.db.models import PrincipalRecord
from governance.keys import KeyService


@dataclass(frozen=True, slots=True)
class Page:
    """A dashboard page: its script (relative to ``dashboard/app.py``) and what opening
    it needs. ``any_of``: one of these permissions is enough."""

    script: str
    title: str
    icon: str
    any_of: tuple[Permission, ...]
    url_path: str

    def allows(self, principal: Principal) -> bool:
        return any(principal.can(p) for p in self.any_of)


PAGES: tuple[Page, ...] = (
    Page(
        "views/overview.py",
        "Overview",
        ":material/dashboard:",
        (Permission.AUDIT_READ, Permission.OPS_READ, Permission.SPEND_READ),
        "overview",
    ),
    Page("views/audit_log.py", "Audit log", ":material/policy:", (Permission.AUDIT_READ,), "audit"),
    Page("views/spend.py", "Spend", ":material/payments:", (Permission.SPEND_READ,), "spend"),
    Page(
        "views/drift.py",
        "Drift and alerts",
        ":material/monitoring:",
        (Permission.OPS_READ,),
        "drift",
    ),
    Page(
        "views/policies.py", "Policies", ":material/gavel:", (Permission.POLICY_READ,), "policies"
    ),
    Page("views/upstreams.py", "Upstreams", ":material/dns:", (Permission.OPS_READ,), "upstreams"),
)


def visible_pages(principal: Principal) -> list[Page]:
    return [page for page in PAGES if page.allows(principal)]


def principal_of_key(sessions: sessionmaker[Session], key: str) -> Principal | None:
    """The principal of a valid key, or None (unknown, revoked, expired, disabled)."""
    return KeyService(sessions).authenticate(key.strip()) if key.strip() else None


def principal_of_identity(sessions: sessionmaker[Session], name: str) -> Principal | None:
    """The enabled principal named ``name`` (a single sign-on identity), or None.

    The session acts with the principal's roles; there is no key, so the key id says
    where the identity came from."""
    if not name:
        return None
    with sessions() as session:
        row = session.scalars(
            select(PrincipalRecord).where(PrincipalRecord.name == name)
        ).one_or_none()
    if row is None or row.disabled_at is not None:
        return None
    return Principal(
        key_id="sso",
        prefix="sso",
        app=row.app,
        team=row.team,
        principal_id=row.id,
        name=row.name,
        roles=roles_of(row.roles),
    )
