"""Roles, the permissions they grant, and the principal a request or command acts as.

Permission checks happen in the services (policy store, audit reader, key service), so
the HTTP admin API and the command line enforce the same rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from governance.errors import PermissionDeniedError


class Role(StrEnum):
    ADMIN = "admin"  # everything, including reading content (every read is audited)
    POLICY_AUTHOR = "policy_author"  # writes and publishes policy versions
    POLICY_APPROVER = "policy_approver"  # approves others' versions, activates, rolls back
    AUDITOR = "auditor"  # reads audit records including content, exports, verifies
    SRE = "sre"  # metrics, drift, upstream health, chain status: never content
    APP = "app"  # the proxy endpoints (/v1/...) only
    FINANCE = "finance"  # spend reports and the price table


class Permission(StrEnum):
    PROXY = "proxy"  # call /v1/...
    PRINCIPALS_MANAGE = "principals:manage"  # principals and keys
    POLICY_READ = "policy:read"
    POLICY_PUBLISH = "policy:publish"
    POLICY_SHADOW = "policy:shadow"  # try a version in shadow mode (no enforcement)
    POLICY_APPROVE = "policy:approve"  # approve, activate, roll back
    AUDIT_READ = "audit:read"  # record metadata (who, which model, decision, tokens)
    AUDIT_CONTENT = "audit:content"  # stored prompts and answers
    AUDIT_VERIFY = "audit:verify"  # chain and checkpoint status
    AUDIT_MANAGE = "audit:manage"  # checkpoints, forget, purge
    OPS_READ = "ops:read"  # health, upstreams, metrics, drift
    SPEND_READ = "spend:read"  # spend rollups, budgets and their use, prices
    PRICES_MANAGE = "prices:manage"  # load new prices
    MONITORS_MANAGE = "monitors:manage"  # run monitor jobs, acknowledge alerts, rebaseline


PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission) - {Permission.PROXY},
    Role.POLICY_AUTHOR: frozenset(
        {Permission.POLICY_READ, Permission.POLICY_PUBLISH, Permission.POLICY_SHADOW}
    ),
    Role.POLICY_APPROVER: frozenset(
        {Permission.POLICY_READ, Permission.POLICY_SHADOW, Permission.POLICY_APPROVE}
    ),
    Role.AUDITOR: frozenset(
        {
            Permission.POLICY_READ,
            Permission.AUDIT_READ,
            Permission.AUDIT_CONTENT,
            Permission.AUDIT_VERIFY,
            Permission.SPEND_READ,
        }
    ),
    Role.SRE: frozenset(
        {
            Permission.AUDIT_VERIFY,
            Permission.OPS_READ,
            Permission.SPEND_READ,
            Permission.MONITORS_MANAGE,
        }
    ),
    Role.APP: frozenset({Permission.PROXY}),
    Role.FINANCE: frozenset({Permission.SPEND_READ, Permission.PRICES_MANAGE}),
}


def parse_roles(names: Iterable[str]) -> frozenset[Role]:
    """Role names to roles; an unknown name is an error naming the valid ones."""
    roles = set()
    for name in names:
        try:
            roles.add(Role(name))
        except ValueError:
            valid = ", ".join(r.value for r in Role)
            raise ValueError(f"unknown role {name!r} (roles: {valid})") from None
    return frozenset(roles)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting: a principal, through one of its keys.

    ``app``/``team`` label proxy traffic and are set for principals with the ``app`` role.
    A local operator (the command line with database access and no key) is an admin
    named ``local:<user>`` with key id ``local``.
    """

    key_id: str
    prefix: str
    app: str | None
    team: str | None
    principal_id: str | None = None
    name: str = ""
    roles: frozenset[Role] = frozenset({Role.APP})

    @classmethod
    def operator(cls, user: str) -> Principal:
        return cls(
            key_id="local",
            prefix="local",
            app=None,
            team=None,
            principal_id=None,
            name=f"local:{user}",
            roles=frozenset({Role.ADMIN}),
        )

    @property
    def traffic_app(self) -> str:
        """The app that proxy traffic of this principal is recorded under."""
        if self.app is None:
            raise PermissionDeniedError(
                f"{self.name or self.prefix} has no app; only app principals call /v1",
                code="role_not_permitted",
            )
        return self.app

    @property
    def is_operator(self) -> bool:
        return self.principal_id is None

    def can(self, permission: Permission) -> bool:
        return any(permission in PERMISSIONS[role] for role in self.roles)

    def require(self, permission: Permission) -> None:
        """Raise `PermissionDeniedError` unless one of the roles grants ``permission``."""
        if self.can(permission):
            return
        granting = sorted(r.value for r, perms in PERMISSIONS.items() if permission in perms)
        held = ", ".join(sorted(r.value for r in self.roles)) or "none"
        raise PermissionDeniedError(
            f"{self.name or self.prefix} (roles: {held}) may not {permission.value}; "
            f"that needs one of the roles {', '.join(granting)}",
            code="role_not_permitted",
        )
