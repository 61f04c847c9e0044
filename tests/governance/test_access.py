"""Roles, permissions and principals: who may do what, and every change on the record."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from governance.access import PERMISSIONS, Permission, Principal, Role, parse_roles
from governance.access.principals import PrincipalExistsError, PrincipalService
from governance.audit.chain import SHARED_CHAIN
from governance.db import AuditRecord, make_engine, session_factory
from governance.errors import InvalidRequestError, NotFoundError, PermissionDeniedError

OPERATOR = Principal.operator("ops")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def service(engine: Engine) -> PrincipalService:
    return PrincipalService(session_factory(engine))


def unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def acting(*roles: Role, name: str = "someone") -> Principal:
    return Principal(key_id="k1", prefix="th-k1", app=None, team=None, name=name, roles=roles)


def admin_records(engine: Engine, principal: str) -> list[AuditRecord]:
    """The admin records whose details name ``principal``, in chain order."""
    with session_factory(engine)() as session:
        rows = session.scalars(
            select(AuditRecord).where(AuditRecord.kind == "admin").order_by(AuditRecord.id)
        )
        return [r for r in rows if (r.decision or {}).get("principal") == principal]


# -- roles ------------------------------------------------------------------------------


def test_roles_grant_what_the_design_says() -> None:
    def holders(permission: Permission) -> set[Role]:
        return {role for role, granted in PERMISSIONS.items() if permission in granted}

    assert holders(Permission.PROXY) == {Role.APP}  # only applications call /v1/...
    assert holders(Permission.PRINCIPALS_MANAGE) == {Role.ADMIN}
    assert holders(Permission.POLICY_PUBLISH) == {Role.ADMIN, Role.POLICY_AUTHOR}
    assert holders(Permission.POLICY_APPROVE) == {Role.ADMIN, Role.POLICY_APPROVER}
    assert holders(Permission.POLICY_SHADOW) == {
        Role.ADMIN,
        Role.POLICY_AUTHOR,
        Role.POLICY_APPROVER,
    }
    assert holders(Permission.AUDIT_CONTENT) == {Role.ADMIN, Role.AUDITOR}
    assert Permission.AUDIT_CONTENT not in PERMISSIONS[Role.SRE]
    assert parse_roles(["app", "auditor"]) == {Role.APP, Role.AUDITOR}
    with pytest.raises(ValueError, match="unknown role 'root'"):
        parse_roles(["root"])


def test_principals_can_hold_several_roles() -> None:
    both = acting(Role.POLICY_AUTHOR, Role.AUDITOR)
    assert both.can(Permission.POLICY_PUBLISH) and both.can(Permission.AUDIT_READ)
    assert not both.can(Permission.POLICY_APPROVE)
    with pytest.raises(PermissionDeniedError) as caught:
        both.require(Permission.POLICY_APPROVE)
    assert caught.value.code == "role_not_permitted" and caught.value.status == 403
    assert "someone" in caught.value.message and "policy_approver" in caught.value.message
    operator = Principal.operator("alice")
    assert (operator.name, operator.key_id, operator.is_operator) == ("local:alice", "local", True)
    assert operator.can(Permission.PRINCIPALS_MANAGE) and not operator.can(Permission.PROXY)


# -- principals -------------------------------------------------------------------------


def test_create_list_get_and_audit(service: PrincipalService, engine: Engine) -> None:
    app_name = unique("billing")
    created = service.create(
        app_name, ["app"], app="billing", team="finance", description="nightly", actor=OPERATOR
    )
    assert (created.roles, created.app, created.team, created.enabled) == (
        {Role.APP},
        "billing",
        "finance",
        True,
    )
    person = unique("carol")
    several = service.create(person, [Role.POLICY_AUTHOR, Role.AUDITOR], actor=OPERATOR)
    assert several.role_names == ["auditor", "policy_author"] and several.app is None
    assert service.get(person) == several == service.get(several.id)
    assert {app_name, person} <= {p.name for p in service.list()}
    with pytest.raises(NotFoundError, match="no principal named 'nobody-here'"):
        service.get("nobody-here")

    [record] = admin_records(engine, app_name)
    assert (record.endpoint, record.key_id, record.chain_id, record.app) == (
        "principals.create",
        "local",
        SHARED_CHAIN,
        "tollhouse-admin",
    )
    assert record.decision == {
        "actor": "local:ops",
        "principal": app_name,
        "principal_id": created.id,
        "roles": ["app"],
        "app": "billing",
        "team": "finance",
    }


def test_create_refuses_bad_principals(service: PrincipalService, engine: Engine) -> None:
    name = unique("dup")
    service.create(name, ["auditor"], actor=OPERATOR)
    with pytest.raises(PrincipalExistsError, match=f"a principal named '{name}' exists already"):
        service.create(name, ["sre"], actor=OPERATOR)
    with pytest.raises(InvalidRequestError, match="the app role needs an app name"):
        service.create(unique("noapp"), ["app"], actor=OPERATOR)
    with pytest.raises(InvalidRequestError, match="only principals with the app role"):
        service.create(unique("labelled"), ["auditor"], app="x", actor=OPERATOR)
    with pytest.raises(InvalidRequestError, match="unknown role 'root'"):
        service.create(unique("r"), ["root"], actor=OPERATOR)
    with pytest.raises(InvalidRequestError, match="at least one role"):
        service.create(unique("r"), [], actor=OPERATOR)
    with pytest.raises(InvalidRequestError, match="reserved for local operators"):
        service.create("local:alice", ["admin"], actor=OPERATOR)
    with pytest.raises(InvalidRequestError, match="without spaces"):
        service.create("two words", ["admin"], actor=OPERATOR)
    assert len(admin_records(engine, name)) == 1  # refused changes leave no record


def test_only_principal_managers_change_principals(
    service: PrincipalService, engine: Engine
) -> None:
    name = unique("target")
    author = acting(Role.POLICY_AUTHOR, Role.POLICY_APPROVER, Role.AUDITOR, Role.SRE)
    with pytest.raises(PermissionDeniedError, match="principals:manage"):
        service.create(name, ["admin"], actor=author)
    service.create(name, ["sre"], actor=acting(Role.ADMIN))
    for change in (
        lambda: service.disable(name, actor=author),
        lambda: service.set_roles(name, ["admin"], actor=author),
    ):
        with pytest.raises(PermissionDeniedError):
            change()
    assert service.get(name).roles == {Role.SRE}
    assert [r.endpoint for r in admin_records(engine, name)] == ["principals.create"]


def test_disable_and_set_roles(service: PrincipalService, engine: Engine) -> None:
    name = unique("dave")
    service.create(name, ["policy_author"], actor=OPERATOR)
    changed = service.set_roles(name, ["policy_author", "policy_approver"], actor=OPERATOR)
    assert changed.roles == {Role.POLICY_AUTHOR, Role.POLICY_APPROVER}
    service.set_roles(name, ["policy_approver", "policy_author"], actor=OPERATOR)  # same set
    with pytest.raises(InvalidRequestError, match="the app role needs an app name"):
        service.set_roles(name, ["app"], actor=OPERATOR)
    disabled = service.disable(name, actor=OPERATOR)
    assert not disabled.enabled and disabled.disabled_at is not None
    assert service.disable(name, actor=OPERATOR).disabled_at == disabled.disabled_at
    assert name not in {p.name for p in service.list()}
    assert name in {p.name for p in service.list(include_disabled=True)}

    records = admin_records(engine, name)
    assert [r.endpoint for r in records] == [
        "principals.create",
        "principals.roles",
        "principals.disable",
    ]
    assert records[1].decision is not None
    assert records[1].decision["roles"] == ["policy_approver", "policy_author"]
    assert records[1].decision["previous_roles"] == ["policy_author"]
    seqs = [r.seq for r in records]
    assert seqs == sorted(seqs) and all(r.chain_id == SHARED_CHAIN for r in records)
