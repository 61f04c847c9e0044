"""Keys: stored only as hashes, shown once, looked up by prefix, expiring, rotating."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select, update

from governance.access import Principal, Role
from governance.access.principals import PrincipalService
from governance.audit.chain import SHARED_CHAIN
from governance.db import ApiKey, AuditRecord, make_engine, session_factory
from governance.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from governance.keys import KeyService, KeyStateError, hash_secret, prefix_of

OPERATOR = Principal.operator("ops")
START = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(engine: Engine, clock: Clock) -> KeyService:
    return KeyService(session_factory(engine), clock=clock)


def unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def key_records(engine: Engine, principal: str) -> list[AuditRecord]:
    with session_factory(engine)() as session:
        rows = session.scalars(
            select(AuditRecord)
            .where(AuditRecord.kind == "admin", AuditRecord.endpoint.like("keys.%"))
            .order_by(AuditRecord.id)
        )
        return [r for r in rows if (r.decision or {}).get("principal") == principal]


def test_create_authenticate_revoke(service: KeyService, engine: Engine) -> None:
    app = unique("billing")
    created = service.create_for_app(app, "finance", "nightly job", actor=OPERATOR)
    assert created.secret.startswith(created.principal.prefix + "-")
    assert prefix_of(created.secret) == created.principal.prefix
    with session_factory(engine)() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.id == created.principal.key_id)).one()
    assert row.secret_hash == hash_secret(created.secret)
    assert created.secret not in (row.prefix, row.secret_hash, row.description)
    principal = service.authenticate(created.secret)
    assert principal == created.principal
    assert (principal.app, principal.team, principal.name, principal.roles) == (
        app,
        "finance",
        app,
        {Role.APP},
    )
    assert service.authenticate(created.secret + "x") is None
    service.revoke(created.principal.key_id, actor=OPERATOR)
    assert service.authenticate(created.secret) is None
    service.revoke(created.principal.prefix, actor=OPERATOR)  # again: nothing changes
    assert created.principal.key_id not in [k.id for k in service.list()]
    [revoked] = [k for k in service.list(include_revoked=True) if k.principal == app]
    assert revoked.status(START) == "revoked" and revoked.description == "nightly job"
    with pytest.raises(NotFoundError, match="th-nothere"):
        service.revoke("th-nothere", actor=OPERATOR)

    records = key_records(engine, app)
    assert [r.endpoint for r in records] == ["keys.create", "keys.revoke"]
    assert all(r.chain_id == SHARED_CHAIN and r.key_id == "local" for r in records)
    assert records[0].decision == {
        "actor": "local:ops",
        "principal": app,
        "principal_id": principal.principal_id,
        "key_id": principal.key_id,
        "prefix": principal.prefix,
        "expires_at": None,
    }
    # everything after the visible prefix (token_urlsafe secrets may themselves contain "-")
    secret_part = created.secret.removeprefix(created.principal.prefix + "-")
    assert len(secret_part) >= 32
    assert all(secret_part not in str(r.decision) for r in records)


def test_lookup_is_by_prefix_and_compares_the_whole_key(
    service: KeyService, engine: Engine
) -> None:
    created = service.create_for_app(unique("web"), actor=OPERATOR)
    prefix = created.principal.prefix
    wrong_secret = f"{prefix}-{'A' * 32}"
    assert service.authenticate(wrong_secret) is None  # right prefix, wrong secret
    assert service.authenticate(f"th-00000000-{created.secret.split('-', 2)[2]}") is None
    for malformed in ("", "th", "th-", f"{prefix}-", prefix, "sk-abc-def", "th--x"):
        assert service.authenticate(malformed) is None
    # The row is found by prefix: a stored hash that does not match the key refuses it,
    # even for the real key.
    with session_factory(engine).begin() as session:
        session.execute(
            update(ApiKey).where(ApiKey.prefix == prefix).values(secret_hash=hash_secret("x"))
        )
    assert service.authenticate(created.secret) is None


def test_keys_expire(service: KeyService, clock: Clock) -> None:
    app = unique("batch")
    created = service.create_for_app(app, expires_at=START + dt.timedelta(hours=1), actor=OPERATOR)
    grant = service.lookup(created.secret)
    assert grant is not None and grant.expires_at == START + dt.timedelta(hours=1)
    clock.advance(minutes=59, seconds=59)
    assert service.authenticate(created.secret) == created.principal
    [listed] = [k for k in service.list() if k.principal == app]
    assert listed.status(clock.now) == "expires 2030-01-01 13:00"
    clock.advance(seconds=1)  # expires_at <= now: expired
    assert service.authenticate(created.secret) is None
    assert app not in {k.principal for k in service.list()}
    [expired] = [k for k in service.list(include_revoked=True) if k.principal == app]
    assert expired.status(clock.now) == "expired" and not expired.valid_at(clock.now)
    with pytest.raises(InvalidRequestError, match="must lie in the future"):
        service.create(app, expires_at=clock.now, actor=OPERATOR)


def test_rotation_overlaps_then_retires_the_old_key(
    service: KeyService, clock: Clock, engine: Engine
) -> None:
    app = unique("rotor")
    old = service.create_for_app(app, "t", expires_at=START + dt.timedelta(days=90), actor=OPERATOR)
    clock.advance(days=10)
    new = service.rotate(old.principal.prefix, dt.timedelta(hours=24), actor=OPERATOR)
    assert new.principal.principal_id == old.principal.principal_id
    assert new.principal.key_id != old.principal.key_id and new.secret != old.secret
    assert new.expires_at == clock.now + dt.timedelta(days=90)  # same lifetime
    assert new.replaced is not None and new.replaced.replaced_by == new.principal.key_id
    assert new.replaced.expires_at == clock.now + dt.timedelta(hours=24)

    clock.advance(hours=23, minutes=59)  # inside the window: both work
    assert service.authenticate(old.secret) == old.principal
    assert service.authenticate(new.secret) == new.principal
    clock.advance(minutes=1)  # the window is over
    assert service.authenticate(old.secret) is None
    assert service.authenticate(new.secret) == new.principal

    with pytest.raises(KeyStateError, match="already rotated"):
        service.rotate(old.principal.key_id, dt.timedelta(hours=1), actor=OPERATOR)
    with pytest.raises(InvalidRequestError, match="cannot be negative"):
        service.rotate(new.principal.key_id, dt.timedelta(hours=-1), actor=OPERATOR)
    # The overlap never extends a key: it ends at the old key's own expiry if sooner.
    clock.now = START + dt.timedelta(days=100) - dt.timedelta(hours=1)
    newer = service.rotate(new.principal.prefix, dt.timedelta(days=7), actor=OPERATOR)
    assert newer.replaced is not None
    assert newer.replaced.expires_at == START + dt.timedelta(days=100)

    records = key_records(engine, app)
    assert [r.endpoint for r in records] == ["keys.create", "keys.rotate", "keys.rotate"]
    rotation = records[1].decision or {}
    assert (rotation["key_id"], rotation["new_key_id"], rotation["overlap_s"]) == (
        old.principal.key_id,
        new.principal.key_id,
        86400.0,
    )
    assert new.secret.removeprefix(new.principal.prefix + "-") not in str(rotation)


def test_rotation_without_expiry_and_of_dead_keys(service: KeyService) -> None:
    created = service.create_for_app(unique("plain"), actor=OPERATOR)
    rotated = service.rotate(created.principal.key_id, dt.timedelta(0), actor=OPERATOR)
    assert rotated.expires_at is None
    assert service.authenticate(created.secret) is None  # no overlap
    service.revoke(rotated.principal.key_id, actor=OPERATOR)
    with pytest.raises(KeyStateError, match="is revoked"):
        service.rotate(rotated.principal.key_id, dt.timedelta(hours=1), actor=OPERATOR)


def test_disabled_principal_is_refused(service: KeyService, engine: Engine) -> None:
    principals = PrincipalService(session_factory(engine))
    name = unique("approver")
    principals.create(name, ["policy_approver"], actor=OPERATOR)
    created = service.create(name, "laptop", actor=OPERATOR)
    principal = service.authenticate(created.secret)
    assert principal is not None and principal.roles == {Role.POLICY_APPROVER}
    assert principal.app is None and principal.name == name
    principals.disable(name, actor=OPERATOR)
    assert service.authenticate(created.secret) is None
    [listed] = [k for k in service.list() if k.principal == name]
    assert listed.status(START) == "principal disabled"
    with pytest.raises(KeyStateError, match="is disabled"):
        service.create(name, actor=OPERATOR)
    with pytest.raises(NotFoundError, match="no principal named"):
        service.create(unique("ghost"), actor=OPERATOR)


def test_app_keys_reuse_the_app_principal(service: KeyService) -> None:
    app = unique("search")
    first = service.create_for_app(app, "web", actor=OPERATOR)
    again = service.create_for_app(app, "web", actor=OPERATOR)
    any_team = service.create_for_app(app, actor=OPERATOR)
    assert first.principal.principal_id == again.principal.principal_id
    assert any_team.principal.principal_id == first.principal.principal_id
    other = service.create_for_app(app, "mobile", actor=OPERATOR)
    assert (other.principal.name, other.principal.team) == (f"{app}@mobile", "mobile")
    assert other.principal.principal_id != first.principal.principal_id
    mine = [k for k in service.list() if k.app == app]
    assert {k.principal for k in mine} == {app, f"{app}@mobile"} and len(mine) == 4


def test_key_changes_need_principals_manage(service: KeyService, engine: Engine) -> None:
    app = unique("locked")
    created = service.create_for_app(app, actor=OPERATOR)
    approver = Principal(
        key_id="k",
        prefix="th-k",
        app=None,
        team=None,
        name="pat",
        roles=frozenset(Role) - {Role.ADMIN},
    )
    for change in (
        lambda: service.create(app, actor=approver),
        lambda: service.create_for_app(app, actor=approver),
        lambda: service.rotate(created.principal.key_id, dt.timedelta(0), actor=approver),
        lambda: service.revoke(created.principal.key_id, actor=approver),
    ):
        with pytest.raises(PermissionDeniedError, match="principals:manage"):
            change()
    assert service.authenticate(created.secret) == created.principal
    assert [r.endpoint for r in key_records(engine, app)] == ["keys.create"]
