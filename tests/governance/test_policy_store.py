"""The policy store: immutable numbered versions, activation state, history and audit."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, select, text, update
from sqlalchemy.engine import make_url

import migrations
from governance.access import Principal, Role
from governance.audit import AuditEntry, AuditWriter, RecordKind
from governance.audit.chain import SHARED_CHAIN
from governance.db import AuditRecord, make_engine, session_factory
from governance.db.models import PolicyVersionRecord
from governance.errors import NotFoundError, PermissionDeniedError
from governance.policy.document import PolicyDocumentError, canonical, digest, parse_policy
from governance.policy.report import shadow_report
from governance.policy.schema import Policy
from governance.policy.store import (
    ApprovalRequiredError,
    FourEyesError,
    PolicyIntegrityError,
    PolicyState,
    PolicyStateError,
    PolicyStore,
)
from tests.conftest import create_database, drop_database


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> PolicyStore:
    return PolicyStore(session_factory(engine))


def unique_name() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


def person(name: str, *roles: Role) -> Principal:
    """A principal acting through a key (``k-<name>``)."""
    return Principal(
        key_id=f"k-{name}", prefix=f"th-{name}", app=None, team=None, name=name, roles=roles
    )


def author(name: str) -> Principal:
    return person(name, Role.POLICY_AUTHOR)


def approver(name: str) -> Principal:
    return person(name, Role.POLICY_APPROVER)


ALICE = author("alice")
OPS = approver("ops")


def policy(name: str, description: str = "first", **extra: Any) -> Policy:
    return Policy.model_validate({"name": name, "description": description, **extra})


def publish(store: PolicyStore, name: str, count: int) -> None:
    """``count`` versions by alice, each approved by ops."""
    for i in range(count):
        version = store.publish(policy(name, f"version {i + 1}"), f"name: {name}\n", ALICE)
        store.approve(name, version.version, OPS)


def admin_records(engine: Engine, name: str) -> list[AuditRecord]:
    with session_factory(engine)() as session:
        return list(
            session.scalars(
                select(AuditRecord)
                .where(AuditRecord.policy_name == name, AuditRecord.kind == "admin")
                .order_by(AuditRecord.id)
            )
        )


# -- documents --------------------------------------------------------------------------


def test_canonical_form_ignores_source_formatting() -> None:
    a = parse_policy(
        "name: x\ndefaults:\n  pii:\n    entities: {PERSON: mask, EMAIL_ADDRESS: block}\n", "a.yaml"
    )
    b = parse_policy(
        "# reordered\ndefaults:\n  pii:\n    entities:\n      EMAIL_ADDRESS: block\n"
        "      PERSON: {internal: mask, external: mask}\nname: x\n",
        "b.yaml",
    )
    assert canonical(a) == canonical(b)
    assert digest(a) == hashlib.sha256(canonical(a)).hexdigest()
    assert b" " not in canonical(policy("x", "no_spaces"))
    assert digest(a) != digest(policy("x"))


def test_parse_errors_name_the_file_and_field() -> None:
    with pytest.raises(PolicyDocumentError) as caught:
        parse_policy("name: x\ndefaults:\n  pii:\n    entities: {PERSON: shred}\n", "p.yaml")
    assert "p.yaml" in caught.value.message
    assert "defaults.pii.entities.PERSON.internal" in caught.value.message
    with pytest.raises(PolicyDocumentError) as caught:
        parse_policy("name: x\noverrides:\n  - name: o\n    match: {}\n    rules: {}\n", "q.yaml")
    assert "q.yaml" in caught.value.message and "overrides[0].match" in caught.value.message
    with pytest.raises(PolicyDocumentError, match=r"r\.yaml: not valid YAML"):
        parse_policy("name: [x\n", "r.yaml")
    with pytest.raises(PolicyDocumentError, match="top level must be a mapping"):
        parse_policy("- a\n", "s.yaml")


# -- versions ---------------------------------------------------------------------------


def test_publish_numbers_versions_and_is_idempotent(store: PolicyStore, engine: Engine) -> None:
    name = unique_name()
    first = store.publish(policy(name), "source one", ALICE, "initial")
    assert (first.version, first.new, first.ref) == (1, True, f"{name}@1")
    assert first.sha256 == digest(policy(name))
    again = store.publish(policy(name), "source one, reformatted", author("bob"), None)
    assert (again.version, again.new, again.author, again.source) == (
        1,
        False,
        "alice",
        "source one",
    )
    second = store.publish(policy(name, "second"), "source two", author("bob"), None)
    assert (second.version, second.new) == (2, True)
    # Identical to an older version but not to the latest: a new version.
    third = store.publish(policy(name), "source one", author("carol"), "back to the first")
    assert (third.version, third.new, third.sha256) == (3, True, first.sha256)

    assert [v.version for v in store.versions(name)] == [1, 2, 3]
    assert name in {v.name for v in store.versions()}
    assert store.get(name).version == 3
    assert store.get(name, 2).source == "source two"
    assert store.get(name, 1).body == policy(name).model_dump(mode="json")
    with pytest.raises(NotFoundError, match=r"no version 9 \(latest is 3\)"):
        store.get(name, 9)
    with pytest.raises(NotFoundError, match="no policy named 'nothing-here'"):
        store.get("nothing-here")
    published = [r.decision for r in admin_records(engine, name)]
    assert [(d or {})["version"] for d in published] == [1, 2, 3]
    assert all((d or {})["action"] == "publish" for d in published)
    assert store.state(name) == PolicyState(None, None, 0)  # publishing activates nothing


def test_concurrent_publishes_number_without_gaps(engine: Engine) -> None:
    name = unique_name()
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            PolicyStore(session_factory(engine)).publish(
                policy(name, f"d{i}"), "s", author(f"w{i}")
            )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    versions = PolicyStore(session_factory(engine)).versions(name)
    assert [v.version for v in versions] == list(range(1, 9))
    assert len({v.sha256 for v in versions}) == 8


def test_load_checks_the_digest(store: PolicyStore, engine: Engine) -> None:
    name = unique_name()
    original = policy(name, defaults={"models": ["m"], "pii": {"entities": {"PERSON": "block"}}})
    store.publish(original, "src", ALICE, None)
    assert store.load(name, 1) == original
    tampered = original.model_dump(mode="json")
    tampered["defaults"]["pii"]["entities"]["PERSON"]["external"] = "allow"
    with engine.begin() as connection:
        connection.execute(
            update(PolicyVersionRecord)
            .where(PolicyVersionRecord.name == name, PolicyVersionRecord.version == 1)
            .values(body=tampered)
        )
    with pytest.raises(PolicyIntegrityError, match=rf"policy {name}@1: the stored body"):
        store.load(name, 1)
    with pytest.raises(NotFoundError):
        store.load(name, 2)


# -- state ------------------------------------------------------------------------------


def test_activate_rollback_shadow_and_history(store: PolicyStore) -> None:
    name = unique_name()
    publish(store, name, 3)
    with pytest.raises(PolicyStateError, match="nothing to roll back to"):
        store.rollback(name, OPS)
    with pytest.raises(NotFoundError, match="no version 4"):
        store.activate(name, 4, OPS)
    with pytest.raises(NotFoundError, match="no policy named"):
        store.activate(unique_name(), 1, OPS)

    assert store.activate(name, 1, OPS, "go live").state == PolicyState(1, None, 1)
    assert not store.activate(name, 1, OPS).changed  # already active: nothing written
    store.activate(name, 2, OPS)
    assert store.attach_shadow(name, 3, OPS).state == PolicyState(2, 3, 3)
    assert not store.attach_shadow(name, 3, OPS).changed
    with pytest.raises(PolicyStateError, match="v2 is the active version"):
        store.attach_shadow(name, 2, OPS)

    # Activating the shadowed version detaches the shadow in the same transaction.
    change = store.activate(name, 3, OPS, "promote")
    assert [e.action for e in change.entries] == ["activate", "shadow_off"]
    assert change.state == PolicyState(3, None, 5) == store.state(name)

    # Rollbacks undo activations one by one.
    back = store.rollback(name, OPS, "bad release")
    assert (back.entries[0].version, back.entries[0].previous_version) == (2, 3)
    assert store.rollback(name, OPS).state.active == 1
    with pytest.raises(PolicyStateError, match="v1 is active"):
        store.rollback(name, OPS)
    store.attach_shadow(name, 2, OPS)
    assert store.detach_shadow(name, OPS).state == PolicyState(1, None, 9)
    assert not store.detach_shadow(name, OPS).changed

    history = [(e.action, e.version, e.previous_version, e.comment) for e in store.history(name)]
    assert history == [
        ("activate", 1, None, "go live"),
        ("activate", 2, 1, None),
        ("shadow_on", 3, None, None),
        ("activate", 3, 2, "promote"),
        ("shadow_off", None, 3, "v3 is now active"),
        ("rollback", 2, 3, "bad release"),
        ("rollback", 1, 2, None),
        ("shadow_on", 2, None, None),
        ("shadow_off", None, 2, None),
    ]
    assert store.state(unique_name()) == PolicyState(None, None, 0)


def test_every_change_is_audited(store: PolicyStore, engine: Engine) -> None:
    name = unique_name()
    publish(store, name, 2)
    store.activate(name, 1, approver("alice2"), "go live")
    store.activate(name, 2, approver("bob2"), None)
    store.rollback(name, approver("carol"), "revert")
    store.attach_shadow(name, 2, author("dave"))
    store.detach_shadow(name, approver("erin"))
    records = admin_records(engine, name)[4:]  # after two publications and approvals
    assert [r.endpoint for r in records] == [
        "policy.activate",
        "policy.activate",
        "policy.rollback",
        "policy.shadow_on",
        "policy.shadow_off",
    ]
    assert {(r.kind, r.status, r.app, r.content_retention, r.chain_id) for r in records} == {
        ("admin", "ok", "tollhouse-admin", "none", SHARED_CHAIN)
    }
    assert [r.key_id for r in records] == ["k-alice2", "k-bob2", "k-carol", "k-dave", "k-erin"]
    assert [r.policy_version for r in records] == [1, 2, 1, 2, 2]
    assert records[2].decision == {
        "action": "rollback",
        "version": 1,
        "previous_version": 2,
        "actor": "carol",
        "comment": "revert",
    }
    assert records[4].decision is not None and records[4].decision["version"] is None
    assert all(r.shadow is None and r.request_id.startswith("adm_") for r in records)
    assert len({r.request_id for r in records}) == len(records)


def test_concurrent_activations_keep_state_and_history_consistent(engine: Engine) -> None:
    """Many writers at once: every change sees the one before it, none is lost."""
    name = unique_name()
    publish(PolicyStore(session_factory(engine)), name, 4)
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        store = PolicyStore(session_factory(engine))
        try:
            barrier.wait()
            for j in range(6):
                store.activate(name, (i + j) % 4 + 1, approver(f"w{i}"))
                if j % 3 == 2:
                    try:
                        store.attach_shadow(name, (i + j + 1) % 4 + 1, approver(f"w{i}"))
                    except PolicyStateError:
                        pass  # another worker has just activated that version
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = PolicyStore(session_factory(engine))
    history = store.history(name)
    state = store.state(name)
    assert state.generation == len(history) > 8
    active: int | None = None
    shadow: int | None = None
    for entry in history:  # replaying the history gives each entry's previous version
        if entry.action == "activate":
            assert entry.previous_version == active and entry.version != active
            active = entry.version
        else:
            assert entry.previous_version == shadow
            assert entry.action == "shadow_off" or entry.version != active
            shadow = entry.version
    assert (state.active, state.shadow) == (active, shadow)
    assert len(admin_records(engine, name)) == 4 + 4 + len(history)  # publish, approve


# -- four eyes ---------------------------------------------------------------------------


def test_four_eyes_needs_an_approver_other_than_the_author(
    store: PolicyStore, engine: Engine
) -> None:
    name = unique_name()
    v1 = store.publish(policy(name), "src", ALICE, "first")
    assert (v1.approvals, v1.approved()) == ((), False)
    both = person("alice", Role.POLICY_AUTHOR, Role.POLICY_APPROVER)
    with pytest.raises(FourEyesError, match=f"{name}@1 was authored by alice") as caught:
        store.approve(name, 1, both)
    assert caught.value.code == "four_eyes"
    with pytest.raises(ApprovalRequiredError) as refused:
        store.activate(name, 1, OPS)
    assert refused.value.message == (
        f"policy {name!r}: v1 has no approval; ask a policy approver other than alice to run "
        f"`tollhouse policy approve {name}@1`"
    )
    # Shadow mode is how a version is tried before approval: the author may shadow it.
    with pytest.raises(PermissionDeniedError, match="policy:approve"):
        store.activate(name, 1, ALICE)
    with pytest.raises(PermissionDeniedError, match="policy:publish"):
        store.publish(policy(name, "by an approver"), "src", OPS)
    with pytest.raises(PermissionDeniedError, match="policy:approve"):
        store.approve(name, 1, ALICE)

    first = store.approve(name, 1, OPS, "looks right")
    assert (first.approver, first.comment, first.new) == ("ops", "looks right", True)
    again = store.approve(name, 1, OPS, "twice")
    assert (again.new, again.at, again.comment) == (False, first.at, "looks right")
    approved = store.get(name, 1)
    assert approved.approved_by == ("ops",) and approved.approved()
    assert store.activate(name, 1, both).state.active == 1  # any approver, once approved

    records = admin_records(engine, name)
    assert [r.endpoint for r in records] == ["policy.publish", "policy.approve", "policy.activate"]
    assert records[1].decision is not None and records[1].key_id == "k-ops"
    assert (records[1].decision["actor"], records[1].decision["author"]) == ("ops", "alice")
    assert records[1].decision["comment"] == "looks right"


def test_shadow_needs_no_approval(store: PolicyStore) -> None:
    name = unique_name()
    store.publish(policy(name), "src", ALICE)
    assert store.attach_shadow(name, 1, ALICE).state.shadow == 1
    assert store.detach_shadow(name, ALICE).state.shadow is None
    with pytest.raises(PermissionDeniedError, match="policy:shadow"):
        store.attach_shadow(name, 1, person("sre", Role.SRE))


def test_four_eyes_off_approves_on_publication(engine: Engine) -> None:
    sessions = session_factory(engine)
    relaxed = PolicyStore(sessions, four_eyes=False)
    strict = PolicyStore(sessions)
    name = unique_name()
    v1 = relaxed.publish(policy(name), "src", ALICE)
    assert v1.approved_by == ("alice",) and v1.approved(four_eyes=False)
    assert v1.approvals[0].comment == "four eyes off: approved on publication"
    assert not v1.approved(four_eyes=True)  # the author's own approval
    assert relaxed.activate(name, 1, OPS).state.active == 1
    both = person("alice", Role.POLICY_AUTHOR, Role.POLICY_APPROVER)
    assert not relaxed.approve(name, 1, both).new  # already approved by alice
    assert [v.approved_by for v in relaxed.versions(name)] == [("alice",)]
    assert [r.endpoint for r in admin_records(engine, name)] == [
        "policy.publish",
        "policy.approve",
        "policy.activate",
    ]

    # Switched back on, the author's own approval no longer counts: not for
    # activation, not for a rollback to it.
    strict.publish(policy(name, "second"), "src", ALICE)
    strict.approve(name, 2, OPS)
    strict.activate(name, 2, OPS)
    with pytest.raises(ApprovalRequiredError, match="v1 has no approval"):
        strict.rollback(name, OPS)
    with pytest.raises(ApprovalRequiredError, match="v1 has no approval"):
        strict.activate(name, 1, OPS)
    strict.approve(name, 1, approver("erin"))
    assert strict.rollback(name, OPS).state.active == 1


# -- shadow report ----------------------------------------------------------------------


def admitted(
    request_id: str,
    name: str,
    app: str,
    shadow: dict[str, Any] | None,
    *,
    at: dt.datetime,
    kind: RecordKind = RecordKind.ADMITTED,
    action: str = "allow",
) -> AuditEntry:
    return AuditEntry(
        request_id=request_id,
        kind=kind,
        recorded_at=at,
        app=app,
        team=None,
        key_id="k",
        endpoint="chat.completions",
        status="admitted",
        content_retention="none",
        policy_name=name,
        policy_version=1,
        decision={
            "action": action,
            "model": "m",
            "destinations": ["internal", "external"],
            "rules": [],
            "pii": {},
            "overrides": [],
        },
        shadow=shadow,
    )


def would(action: str = "allow", model: str = "m", **extra: Any) -> dict[str, Any]:
    return {
        "version": 2,
        "action": action,
        "model": model,
        "destinations": extra.pop("destinations", ["internal", "external"]),
        "rules": [],
        **extra,
    }


def test_shadow_report_counts_in_the_database(engine: Engine) -> None:
    name = unique_name()
    now = dt.datetime.now(dt.UTC)
    old = now - dt.timedelta(days=3)
    rid = uuid.uuid4().hex[:8]
    entries = [
        admitted(f"{rid}-same", name, "a", would(), at=now),
        admitted(f"{rid}-block", name, "a", would("block", rules=["keywords"]), at=now),
        admitted(f"{rid}-route", name, "b", would("route", "m2"), at=now),
        admitted(f"{rid}-dest", name, "b", would(destinations=["internal"]), at=now),
        admitted(f"{rid}-fail1", name, "b", {"version": 2, "error": "boom"}, at=now),
        admitted(f"{rid}-fail2", name, "b", {"version": 2, "error": "boom"}, at=now),
        admitted(f"{rid}-violation", name, "b", would("block", error="policy_violation"), at=now),
        admitted(f"{rid}-both-block", name, "c", would("block"), at=now, action="block"),
        admitted(f"{rid}-old", name, "a", would("block"), at=old),
        admitted(f"{rid}-noshadow", name, "a", None, at=now),
        admitted(f"{rid}-completed", name, "a", would("block"), at=now, kind=RecordKind.COMPLETED),
        admitted(f"{rid}-other", unique_name(), "a", would("block"), at=now),
    ]
    writer = AuditWriter(engine)  # the proxy's path: None is stored as SQL NULL
    writer.start()
    try:
        writer.write_blocking(entries, timeout_s=10)
    finally:
        writer.close()
    with engine.connect() as connection:
        nulls = connection.scalar(
            text("SELECT count(*) FROM audit_records WHERE request_id = :r AND shadow IS NULL"),
            {"r": f"{rid}-noshadow"},
        )
    assert nulls == 1

    sessions = session_factory(engine)
    report = shadow_report(sessions, name, now - dt.timedelta(hours=1), examples=10)
    assert (report.evaluated, report.changed, report.failed) == (8, 4, 2)
    assert report.transitions == {
        ("allow", "allow"): 2,
        ("allow", "block"): 2,
        ("allow", "error"): 2,
        ("allow", "route"): 1,
        ("block", "block"): 1,
    }
    assert report.versions == {(1, 2): 8}
    assert {app: (c.evaluated, c.changed) for app, c in report.by_app.items()} == {
        "a": (2, 1),
        "b": (5, 3),
        "c": (1, 0),
    }
    assert report.failures == {"boom": 2}
    assert report.examples == (f"{rid}-violation", f"{rid}-dest", f"{rid}-route", f"{rid}-block")
    assert shadow_report(sessions, name, now - dt.timedelta(hours=1), examples=1).examples == (
        f"{rid}-violation",
    )

    everything = shadow_report(sessions, name)
    assert (everything.evaluated, everything.changed) == (9, 5)
    assert everything.examples[0] == f"{rid}-old"  # the newest row, recorded with an old time
    empty = shadow_report(sessions, unique_name())
    assert (empty.evaluated, empty.changed, empty.transitions, empty.examples) == (0, 0, {}, ())


# -- migration --------------------------------------------------------------------------


def test_policy_migration_downgrades_and_upgrades_again(
    database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if make_url(database_url).get_backend_name() == "sqlite":
        url, server = f"sqlite:///{tmp_path / 'fresh.db'}", None
    else:
        server = request.getfixturevalue("postgres_server")
        url = create_database(server)
    try:
        # 0003 (hash-chained audit records) cannot be undone; 0002 can, before it.
        migrations.upgrade(url, "0002")
        command_config = migrations.alembic_config(url)
        command.downgrade(command_config, "0001")
        command.upgrade(command_config, "head")
        engine = make_engine(url)
        try:
            store = PolicyStore(session_factory(engine))
            store.publish(policy("again"), "name: again\n", ALICE, None)
            store.approve("again", 1, OPS)
            assert store.activate("again", 1, OPS).state == PolicyState(1, None, 1)
        finally:
            engine.dispose()
    finally:
        if server is not None:
            drop_database(server, url)
