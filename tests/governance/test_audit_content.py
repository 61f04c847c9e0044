"""Stored content: encrypted at rest for ``full``, crypto-shredded by forget, dropped by
purge, exported with a manifest; the chains verify after each of these."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from governance.access import Principal, Role
from governance.audit import AuditEntry, AuditWriter, RecordKind
from governance.audit.checkpoint import Checkpointer, key_id_of, load_public_key, load_signing_key
from governance.audit.reader import AuditReader, RecordFilter
from governance.audit.retention import Retention
from governance.audit.vault import DataKeys, MasterKey
from governance.audit.verify import verify_trail
from governance.db import AuditRecord, session_factory
from governance.db.models import AuditContent
from governance.errors import PermissionDeniedError

SECRET_PROMPT = "synthetic prompt: the launch code is 0000"
OPERATOR = Principal.operator("test")


def record(i: int, app: str, user: str | None, retention: str, when: dt.datetime) -> AuditEntry:
    return AuditEntry(
        request_id=f"req_{app}_{i}",
        kind=RecordKind.ADMITTED,
        recorded_at=when,
        app=app,
        team=None,
        key_id="k",
        endpoint="chat.completions",
        status="admitted",
        content_retention=retention,
        end_user=user,
        request_content={"messages": [{"role": "user", "content": f"{SECRET_PROMPT} #{i}"}]},
    )


@pytest.fixture
def engine(fresh_engine: Engine) -> Engine:
    return fresh_engine


@pytest.fixture
def keys(audit_keys: dict[str, str]) -> dict[str, str]:
    return audit_keys


def fill(engine: Engine, keys: dict[str, str]) -> AuditWriter:
    now = dt.datetime.now(dt.UTC)
    old = now - dt.timedelta(days=500)
    writer = AuditWriter(engine, data_keys=DataKeys(MasterKey.from_file(keys["master_key_file"])))
    writer.start()
    writer.write_blocking(
        [
            record(1, "billing", "u-1", "full", old),
            record(2, "billing", "u-2", "full", now),
            record(3, "billing", None, "redacted", now),
            record(4, "hr", "u-1", "full", now),
            record(5, "hr", "u-3", "redacted", old),
            record(6, "hr", "u-3", "none", now),
        ],
        timeout_s=10,
    )
    writer.close()
    Checkpointer(engine, load_signing_key(keys["signing_key_file"])).write()
    return writer


def reader(engine: Engine, keys: dict[str, str]) -> AuditReader:
    return AuditReader(
        engine, session_factory(engine), MasterKey.from_file(keys["master_key_file"])
    )


def status(engine: Engine, keys: dict[str, str]) -> dict[str, str]:
    shown: dict[str, str] = {}
    for i, app in [(1, "billing"), (2, "billing"), (3, "billing"), (4, "hr"), (5, "hr"), (6, "hr")]:
        (only,) = reader(engine, keys).show(OPERATOR, f"req_{app}_{i}")
        shown[f"{app}{i}"] = only["content"]["status"]
    return shown


def verifies(engine: Engine, keys: dict[str, str]) -> bool:
    public = load_public_key(keys["signing_key_file"])
    report = verify_trail(engine, {key_id_of(public): public})
    assert report.ok, [p.describe() for p in report.problems]
    return report.ok


def test_full_content_is_encrypted_at_rest(engine: Engine, keys: dict[str, str]) -> None:
    fill(engine, keys)
    with engine.connect() as connection:
        bodies = connection.execute(
            select(AuditContent.encryption, AuditContent.body).order_by(AuditContent.seq)
        ).all()
    assert [e for e, _ in bodies] == ["aes-256-gcm", "aes-256-gcm", "none", "aes-256-gcm", "none"]
    for encryption, body in bodies:
        assert (SECRET_PROMPT.encode() in body) == (encryption == "none")
    (shown,) = reader(engine, keys).show(OPERATOR, "req_billing_2")
    assert shown["content"]["request"]["messages"][0]["content"] == f"{SECRET_PROMPT} #2"
    assert verifies(engine, keys)


def test_forget_an_app_shreds_its_content_and_the_trail_still_verifies(
    engine: Engine, keys: dict[str, str]
) -> None:
    fill(engine, keys)
    done = Retention(session_factory(engine)).forget(OPERATOR, app="billing")
    assert done.keys_destroyed == 2 and done.plaintext_deleted == 1  # u-1 and u-2; record 3
    assert status(engine, keys) == {
        "billing1": "shredded",
        "billing2": "shredded",
        "billing3": "erased",
        "hr4": "present",
        "hr5": "present",
        "hr6": "none",
    }
    assert verifies(engine, keys)


def test_forget_a_user_touches_only_that_user(engine: Engine, keys: dict[str, str]) -> None:
    fill(engine, keys)
    Retention(session_factory(engine)).forget(OPERATOR, end_user="u-1")
    shown = status(engine, keys)
    assert shown["billing1"] == shown["hr4"] == "shredded"
    assert shown["billing2"] == "present" and shown["hr5"] == "present"
    assert verifies(engine, keys)


def test_purge_drops_old_content_and_the_trail_still_verifies(
    engine: Engine, keys: dict[str, str]
) -> None:
    fill(engine, keys)
    deleted = Retention(session_factory(engine)).purge(OPERATOR, dt.timedelta(days=400))
    assert deleted == 2
    shown = status(engine, keys)
    assert shown["billing1"] == shown["hr5"] == "erased"
    assert shown["billing2"] == shown["billing3"] == shown["hr4"] == "present"
    assert verifies(engine, keys)


def test_deleting_content_without_purge_or_forget_is_caught(
    engine: Engine, keys: dict[str, str]
) -> None:
    writer = fill(engine, keys)
    with engine.begin() as connection:
        connection.execute(
            AuditContent.__table__.delete().where(
                AuditContent.chain_id == writer.chain_id, AuditContent.seq == 2
            )
        )
    public = load_public_key(keys["signing_key_file"])
    first = verify_trail(engine, {key_id_of(public): public}).first
    assert first is not None and (first.check, first.seq) == ("content", 2)


def test_reading_content_needs_the_role_and_is_audited(
    engine: Engine, keys: dict[str, str]
) -> None:
    fill(engine, keys)
    sre = Principal("k-sre", "th-sre", None, None, "p-sre", "sre-1", frozenset({Role.SRE}))
    auditor = Principal("k-aud", "th-aud", None, None, "p-aud", "aud-1", frozenset({Role.AUDITOR}))
    with pytest.raises(PermissionDeniedError):
        reader(engine, keys).show(sre, "req_billing_2")
    with pytest.raises(PermissionDeniedError):
        reader(engine, keys).query(sre, RecordFilter())
    reader(engine, keys).show(auditor, "req_billing_2")
    with engine.connect() as connection:
        reads = connection.execute(
            select(AuditRecord.key_id, AuditRecord.decision).where(
                AuditRecord.endpoint == "audit.read"
            )
        ).all()
    assert [(k, d["actor"], d["request_id"]) for k, d in reads] == [
        ("k-aud", "aud-1", "req_billing_2")
    ]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_writes_records_and_a_manifest(
    engine: Engine, keys: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    writer = fill(engine, keys)
    out = tmp_path / f"billing.{fmt}"
    manifest = reader(engine, keys).export(
        OPERATOR,
        RecordFilter(app="billing"),
        out,
        fmt=fmt,
        content=True,  # type: ignore[arg-type]
    )
    data = out.read_bytes()
    document = json.loads(manifest.path.read_text())
    assert document["count"] == 3 == manifest.count
    assert document["sha256"] == hashlib.sha256(data).hexdigest()
    assert document["chains"] == {writer.chain_id: {"first_seq": 1, "last_seq": 3}}
    checkpoint = document["checkpoint"]
    with engine.connect() as connection:
        head = connection.execute(
            select(AuditRecord.record_hash).where(
                AuditRecord.chain_id == writer.chain_id, AuditRecord.seq == 6
            )
        ).scalar_one()
    assert {"chain": writer.chain_id, "hash": head, "seq": 6} in json.loads(checkpoint["body"])[
        "heads"
    ]
    assert f"{SECRET_PROMPT} #2".encode() in data  # content was asked for and decrypted
    if fmt == "csv":
        assert data.splitlines()[0].startswith(b"id,chain_id,seq,")
    with engine.connect() as connection:
        exports = (
            connection.execute(
                select(AuditRecord.decision).where(AuditRecord.endpoint == "audit.export")
            )
            .scalars()
            .all()
        )
    assert len(exports) == 1 and exports[0]["count"] == 3 and exports[0]["content_included"]


def test_content_under_another_master_key_is_reported_not_fatal(
    engine: Engine, keys: dict[str, str]
) -> None:
    """A reader holding a different master key (say after a botched rotation) gets
    ``unreadable`` with the reason, record by record; plaintext content still shows."""
    fill(engine, keys)
    stranger = AuditReader(engine, session_factory(engine), MasterKey(b"\x01" * 32))
    (sealed,) = stranger.show(OPERATOR, "req_billing_2")
    assert sealed["content"]["status"] == "unreadable"
    assert "not the configured" in sealed["content"]["reason"]
    (plain,) = stranger.show(OPERATOR, "req_billing_3")
    assert plain["content"]["status"] == "present"
