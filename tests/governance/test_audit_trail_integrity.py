"""The hash chains, checkpoints and `audit verify`, on real SQLite and PostgreSQL.

Tampering is done the way an insider would: SQL straight into the database. Writer
chains use hash format 2; the shared admin chain (and ``migrated-0003``) keep format 1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import threading
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Engine, func, select, text

import migrations
from governance.access import Principal
from governance.audit import AuditEntry, AuditWriter, RecordKind
from governance.audit.admin import admin_entry
from governance.audit.chain import (
    FORMAT,
    FORMATS,
    GENESIS,
    HASHED_FIELDS,
    SHARED_CHAIN,
    hash_row,
    hashed_fields,
    preimage,
    record_hash,
)
from governance.audit.checkpoint import Checkpointer, key_id_of, load_public_key, load_signing_key
from governance.audit.shared import append_shared
from governance.audit.verify import verify_trail
from governance.db import AuditRecord, make_engine, session_factory
from governance.db.models import AuditChain
from governance.db.types import ExactDecimal, UTCDateTime
from tests.audit_format.independent_verifier import Result
from tests.audit_format.independent_verifier import verify as independent_verify
from tests.support.audit_keys import write_audit_keys


def entry(i: int, app: str = "billing", **fields: object) -> AuditEntry:
    values: dict[str, object] = {
        "request_id": f"req_{i}",
        "kind": RecordKind.COMPLETED,
        "recorded_at": dt.datetime.now(dt.UTC),
        "app": app,
        "team": None if i % 3 else "finance",
        "key_id": "k1",
        "endpoint": "chat.completions",
        "status": "ok",
        "content_retention": "none",
        "cost": Decimal("0.000123"),
        "input_tokens": i,
        "cached_input_tokens": i // 2,  # format 2's fields
        "price_id": 40 + i % 3,
        "output_tokens": 2 * i,
        "latency_ms": 12.5 + i,
        "finish_reasons": ["stop"],
        "decision": {"action": "allow", "rules": ["defaults"], "note": "Zoë ✓"},
        "stream": bool(i % 2),
    }
    values.update(fields)
    return AuditEntry(**values)  # type: ignore[arg-type]


@pytest.fixture
def engine(fresh_engine: Engine) -> Engine:
    return fresh_engine


@pytest.fixture
def keys(audit_keys: dict[str, str]) -> dict[str, str]:
    return audit_keys


def trusted(keys: dict[str, str]) -> dict[str, object]:
    public = load_public_key(keys["signing_key_file"])
    return {key_id_of(public): public}


def write(engine: Engine, count: int, start: int = 0) -> AuditWriter:
    writer = AuditWriter(engine, batch_max=7)
    writer.start()
    writer.write_blocking([entry(start + i) for i in range(count)], timeout_s=10)
    writer.close()
    return writer


def rows(engine: Engine, chain_id: str) -> list[AuditRecord]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(AuditRecord)
                .where(AuditRecord.chain_id == chain_id)
                .order_by(AuditRecord.seq)
            )
        )


def test_a_writer_chains_its_records_gaplessly(engine: Engine, keys: dict[str, str]) -> None:
    writer = write(engine, 20)
    chain = rows(engine, writer.chain_id)
    assert [r.seq for r in chain] == list(range(1, 21))
    assert chain[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.record_hash for a, b in itertools.pairwise(chain))
    with engine.connect() as connection:
        head = connection.execute(
            select(AuditChain.head_seq, AuditChain.head_hash, AuditChain.closed_at).where(
                AuditChain.chain_id == writer.chain_id
            )
        ).one()
    assert head[0] == 20 and head[1] == chain[-1].record_hash and head[2] is not None
    report = verify_trail(engine, trusted(keys))
    assert report.ok, [p.describe() for p in report.problems]
    assert report.records == 20


def test_concurrent_writers_produce_valid_gapless_chains(
    engine: Engine, keys: dict[str, str]
) -> None:
    """Four writers (as four proxy processes would), each fed by 8 threads at once."""
    writers = [AuditWriter(engine, batch_max=64) for _ in range(4)]
    for writer in writers:
        writer.start()
    signer = Checkpointer(engine, load_signing_key(keys["signing_key_file"]))
    errors: list[BaseException] = []

    def feed(writer: AuditWriter, base: int) -> None:
        try:
            for i in range(40):
                writer.write_blocking([entry(base + i), entry(base + i, kind="admitted")], 30)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=feed, args=(w, 10_000 * n + 1000 * t))
        for n, w in enumerate(writers)
        for t in range(8)
    ]
    for thread in threads:
        thread.start()
    for _ in range(3):  # checkpoints while the writers run
        signer.write()
    for thread in threads:
        thread.join()
    for writer in writers:
        writer.close()
    signer.write()
    assert not errors
    for writer in writers:
        assert [r.seq for r in rows(engine, writer.chain_id)] == list(range(1, 641))
    report = verify_trail(engine, trusted(keys))
    assert report.ok, [p.describe() for p in report.problems]
    assert report.records == 4 * 640 and report.unsigned_records == 0


async def _async_burst(writer: AuditWriter) -> None:
    await asyncio.gather(*(writer.write([entry(i)], 10) for i in range(200)))


def test_async_callers_share_batches_and_stay_in_order(engine: Engine) -> None:
    writer = AuditWriter(engine, batch_max=32)
    writer.start()
    asyncio.run(_async_burst(writer))
    writer.close()
    assert writer.batches_committed < 200
    chain = rows(engine, writer.chain_id)
    assert [r.seq for r in chain] == list(range(1, 201))
    assert verify_trail(engine, {}).ok


def _tamper(engine: Engine, sql: str, **params: object) -> None:
    with engine.begin() as connection:
        connection.execute(text(sql), params)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("app", "someone-else"),
        ("input_tokens", 999_999),
        ("cost", "0.000000000001"),
        ("recorded_at", None),
        ("stream", None),
        ("decision", '{"action":"allow","rules":[]}'),
        ("latency_ms", 0.5),
        ("end_user", "intruder"),
        ("cached_input_tokens", 999),
        ("cached_input_tokens", None),
        ("price_id", 12345),
        ("price_id", None),
    ],
)
def test_changing_any_field_is_caught_and_named(
    engine: Engine, keys: dict[str, str], column: str, value: object
) -> None:
    writer = write(engine, 12)
    target = rows(engine, writer.chain_id)[4]
    if column == "recorded_at":
        value = target.recorded_at - dt.timedelta(hours=3)
    if column == "stream":
        value = not target.stream
    statement = f"UPDATE audit_records SET {column} = :v WHERE id = :id"  # noqa: S608 (fixed names)
    _tamper(engine, statement, v=value, id=target.id)
    report = verify_trail(engine, trusted(keys))
    assert not report.ok
    first = report.first
    assert first is not None
    assert (first.chain_id, first.seq, first.check) == (writer.chain_id, 5, "record_hash")
    assert first.request_id == target.request_id and first.record_id == target.id


def test_deleting_a_record_is_caught(engine: Engine, keys: dict[str, str]) -> None:
    writer = write(engine, 10)
    _tamper(
        engine,
        "DELETE FROM audit_records WHERE chain_id = :c AND seq = 4",
        c=writer.chain_id,
    )
    first = verify_trail(engine, trusted(keys)).first
    assert first is not None and (first.check, first.seq) == ("seq", 5)
    assert "seq 4 missing" in first.detail


def test_reordering_records_is_caught(engine: Engine, keys: dict[str, str]) -> None:
    writer = write(engine, 10)
    chain = rows(engine, writer.chain_id)
    # swap positions 3 and 4 (through a free seq, the pair is unique)
    _tamper(engine, "UPDATE audit_records SET seq = -1 WHERE id = :id", id=chain[2].id)
    _tamper(engine, "UPDATE audit_records SET seq = 3 WHERE id = :id", id=chain[3].id)
    _tamper(engine, "UPDATE audit_records SET seq = 4 WHERE id = :id", id=chain[2].id)
    first = verify_trail(engine, trusted(keys)).first
    assert first is not None and first.seq == 3 and first.check in ("prev_hash", "record_hash")


def test_a_forger_who_rewrites_the_chain_is_caught_by_the_checkpoint(
    engine: Engine, keys: dict[str, str]
) -> None:
    """Insert a record in the middle and re-hash everything after it: the chain itself
    is consistent again, but the signed head no longer matches."""
    writer = write(engine, 10)
    Checkpointer(engine, load_signing_key(keys["signing_key_file"])).write()
    chain = rows(engine, writer.chain_id)
    forged = [dict(r._mapping) for r in chain]
    inserted = {**forged[5], "request_id": "req_forged", "input_tokens": 1}
    forged.insert(5, inserted)
    with engine.begin() as connection:
        connection.execute(
            text("DELETE FROM audit_records WHERE chain_id = :c"), {"c": writer.chain_id}
        )
        previous = GENESIS
        for seq, row in enumerate(forged, start=1):
            row.update(seq=seq, prev_hash=previous)
            row.pop("id")
            row["record_hash"] = previous = hash_row(row)
            connection.execute(AuditRecord.__table__.insert(), [row])
        connection.execute(
            text("UPDATE audit_chains SET head_seq = 11, head_hash = :h WHERE chain_id = :c"),
            {"h": previous, "c": writer.chain_id},
        )
    report = verify_trail(engine, trusted(keys))
    assert not report.ok
    first = report.first
    assert first is not None and first.check == "checkpoint" and first.chain_id == writer.chain_id
    assert report.records == 11


def test_truncating_a_chain_after_a_checkpoint_is_caught(
    engine: Engine, keys: dict[str, str]
) -> None:
    writer = write(engine, 10)
    Checkpointer(engine, load_signing_key(keys["signing_key_file"])).write()
    chain = rows(engine, writer.chain_id)
    with engine.begin() as connection:  # a careful attacker fixes the head row too
        connection.execute(
            text("DELETE FROM audit_records WHERE chain_id = :c AND seq > 7"),
            {"c": writer.chain_id},
        )
        connection.execute(
            text("UPDATE audit_chains SET head_seq = 7, head_hash = :h WHERE chain_id = :c"),
            {"h": chain[6].record_hash, "c": writer.chain_id},
        )
    first = verify_trail(engine, trusted(keys)).first
    assert first is not None and first.check == "checkpoint"
    assert "ends at seq 7" in first.detail and first.chain_id == writer.chain_id


def test_removing_a_checkpoint_breaks_the_checkpoint_chain(
    engine: Engine, keys: dict[str, str]
) -> None:
    signer = Checkpointer(engine, load_signing_key(keys["signing_key_file"]))
    for start in (0, 100, 200):
        write(engine, 3, start)
        assert signer.write() is not None
    _tamper(
        engine,
        "DELETE FROM audit_checkpoints WHERE id = (SELECT MIN(id) + 1 FROM audit_checkpoints)",
    )
    first = verify_trail(engine, trusted(keys)).first
    assert first is not None and first.check == "checkpoint" and "removed" in first.detail


def test_an_untrusted_signature_is_rejected(
    engine: Engine, keys: dict[str, str], tmp_path: Path
) -> None:
    write(engine, 3)
    other = write_audit_keys(tmp_path / "other")
    Checkpointer(engine, load_signing_key(other["signing_key_file"])).write()
    first = verify_trail(engine, trusted(keys)).first
    assert first is not None and "not trusted" in first.detail


def test_verify_since_reads_only_the_recent_part(engine: Engine) -> None:
    writer = write(engine, 10)
    chain = rows(engine, writer.chain_id)
    report = verify_trail(engine, {}, since=chain[7].recorded_at)
    assert report.ok and report.records <= 4
    with engine.connect() as connection:
        total = connection.scalar(select(func.count()).select_from(AuditRecord))
    assert total and report.records < total


# -- hash formats ------------------------------------------------------------------------
OPERATOR = Principal.operator("test")


def independent(url: str, keys: dict[str, str]) -> Result:
    """The verifier written from docs/audit-format.md alone."""
    public = load_public_key(keys["signing_key_file"])
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return independent_verify(url, [pem])


def formats(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return dict(connection.execute(select(AuditChain.chain_id, AuditChain.format)).all())


def admin_record(endpoint: str = "policy.activate") -> AuditEntry:
    return admin_entry(
        endpoint=endpoint,
        actor=OPERATOR,
        recorded_at=dt.datetime.now(dt.UTC),
        details={"comment": "Zoë ✓", "to": 2},
        policy_name="default",
        policy_version=2,
    )


def append_admin(engine: Engine, entry: AuditEntry) -> int:
    with session_factory(engine).begin() as session:
        return append_shared(session, entry)


def test_the_formats_are_prefixes_with_their_own_tags() -> None:
    assert FORMAT == 2 and {1, 2} == FORMATS
    assert hashed_fields(2) == HASHED_FIELDS and len(HASHED_FIELDS) == 41
    assert hashed_fields(1) == HASHED_FIELDS[:39]
    assert HASHED_FIELDS[39:] == ("cached_input_tokens", "price_id")
    row = {name: None for name in HASHED_FIELDS} | {"cached_input_tokens": 3, "price_id": 9}
    one = preimage([row[name] for name in hashed_fields(1)], 1)
    two = preimage([row[name] for name in hashed_fields(2)], 2)
    assert one == b'["tollhouse-audit/1"' + b",null" * 39 + b"]"
    assert two == b'["tollhouse-audit/2"' + b",null" * 39 + b",3,9]"
    assert hash_row(row) == hash_row(row, 2) == record_hash(list(row.values()), 2)
    for wrong in (0, 3, "2", None, True):
        with pytest.raises(ValueError, match="unknown audit hash format"):
            record_hash([None] * 41, wrong)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expects 39 values"):
        record_hash([None] * 41, 1)


def test_a_writer_chain_uses_format_2_and_both_verifiers_accept_it(
    engine: Engine, fresh_database_url: str, keys: dict[str, str]
) -> None:
    writer = write(engine, 12)
    Checkpointer(engine, load_signing_key(keys["signing_key_file"])).write()
    assert formats(engine)[writer.chain_id] == 2
    chain = rows(engine, writer.chain_id)
    assert [(r.cached_input_tokens, r.price_id) for r in chain] == [
        (i // 2, 40 + i % 3) for i in range(12)
    ]
    for r in chain:
        row = dict(r._mapping)
        assert hash_row(row, 2) == r.record_hash != hash_row(row, 1)
    report = verify_trail(engine, trusted(keys))
    assert report.ok and report.records == 12, [p.describe() for p in report.problems]
    mine = independent(fresh_database_url, keys)
    assert mine.ok and mine.records == 12, mine.problems


@pytest.mark.parametrize("column", ["cached_input_tokens", "price_id"])
def test_changing_a_format_2_field_is_caught_by_both_verifiers(
    engine: Engine, fresh_database_url: str, keys: dict[str, str], column: str
) -> None:
    writer = write(engine, 12)
    target = rows(engine, writer.chain_id)[4]
    statement = f"UPDATE audit_records SET {column} = {column} + 1 WHERE id = :id"  # noqa: S608
    _tamper(engine, statement, id=target.id)
    report = verify_trail(engine, trusted(keys))
    first = report.first
    assert first is not None and len(report.problems) == 1
    assert (first.chain_id, first.seq, first.check) == (writer.chain_id, 5, "record_hash")
    mine = independent(fresh_database_url, keys)
    assert mine.problems == [(writer.chain_id, 5, "record_hash does not match the record")]


def test_the_admin_chain_keeps_format_1_beside_format_2_writer_chains(
    engine: Engine, fresh_database_url: str, keys: dict[str, str]
) -> None:
    assert formats(engine) == {SHARED_CHAIN: 1}  # created by migration 0003
    assert append_admin(engine, admin_record()) == 1
    writers = [write(engine, 5), write(engine, 4, start=100)]
    signer = Checkpointer(engine, load_signing_key(keys["signing_key_file"]))
    signer.write()
    assert append_admin(engine, admin_record("audit.export")) == 2
    writers.append(write(engine, 3, start=200))
    signer.write()
    assert formats(engine) == {SHARED_CHAIN: 1, **{w.chain_id: 2 for w in writers}}
    for r in rows(engine, SHARED_CHAIN):  # hashed with the chain's format, not FORMAT
        row = dict(r._mapping)
        assert hash_row(row, 1) == r.record_hash != hash_row(row, 2)
    report = verify_trail(engine, trusted(keys))
    assert report.ok, [p.describe() for p in report.problems]
    assert (report.chains, report.records, report.unsigned_records) == (4, 14, 0)
    mine = independent(fresh_database_url, keys)
    assert mine.ok and mine.records == 14, mine.problems


def test_a_format_1_chain_refuses_fields_only_format_2_hashes(engine: Engine) -> None:
    """Stored but not hashed, they could be changed undetected: appending refuses them."""
    entry = dataclasses.replace(admin_record(), price_id=3)
    with pytest.raises(ValueError, match="format 1 cannot record price_id"):
        append_admin(engine, entry)
    assert rows(engine, SHARED_CHAIN) == []
    assert append_admin(engine, admin_record()) == 1  # the failed append left no trace


@pytest.mark.parametrize("value", [3, 0, "two"])
def test_a_chain_with_an_unknown_format_is_a_problem_not_a_crash(
    engine: Engine, fresh_database_url: str, keys: dict[str, str], value: object
) -> None:
    writer = write(engine, 6)
    with engine.connect() as connection:
        if value == "two" and connection.dialect.name != "sqlite":
            pytest.skip("only SQLite stores text in an integer column")
    _tamper(
        engine,
        "UPDATE audit_chains SET format = :f WHERE chain_id = :c",
        f=value,
        c=writer.chain_id,
    )
    report = verify_trail(engine, trusted(keys))
    assert [(p.check, p.chain_id, p.seq) for p in report.problems] == [
        ("chain", writer.chain_id, None)
    ], [p.describe() for p in report.problems]
    assert f"format {value!r}" in report.problems[0].detail and report.records == 6
    mine = independent(fresh_database_url, keys)
    assert [p[:2] for p in mine.problems] == [(writer.chain_id, None)], mine.problems


def test_records_from_before_0003_stay_format_1_after_every_upgrade(
    url_at_0002: str, keys: dict[str, str]
) -> None:
    """Migration 0003 chains existing records in format 1 (on a table without format 2's
    columns); 0004 adds those columns; the migrated chain, the admin chain and a new writer
    chain then verify side by side, each with its own format."""
    engine = make_engine(url_at_0002)
    try:
        old_records = sa.table(
            "audit_records",
            *(sa.column(name) for name in ("request_id", "kind", "app", "key_id", "endpoint")),
            *(sa.column(name) for name in ("status", "content_retention", "input_tokens")),
            sa.column("recorded_at", UTCDateTime(timezone=True)),
            sa.column("stream", sa.Boolean()),
            sa.column("usage_estimated", sa.Boolean()),
            sa.column("cost", ExactDecimal()),
            sa.column("decision", sa.JSON()),
            sa.column("request_content", sa.JSON()),
        )
        with engine.begin() as connection:
            connection.execute(
                sa.insert(old_records),
                [
                    {
                        "request_id": f"req_old_{i}",
                        "kind": "completed",
                        "recorded_at": dt.datetime(2026, 1, 1, 12, i, tzinfo=dt.UTC),
                        "app": "billing",
                        "key_id": "k1",
                        "endpoint": "chat.completions",
                        "stream": bool(i % 2),
                        "status": "ok",
                        "usage_estimated": False,
                        "content_retention": "none",
                        "cost": Decimal("0.25"),
                        "input_tokens": i,
                        "decision": {"action": "allow", "note": "Zoë ✓"},
                        "request_content": {"messages": [i]} if i == 1 else None,
                    }
                    for i in range(3)
                ],
            )
        migrations.upgrade(url_at_0002)
        assert formats(engine) == {"migrated-0003": 1, SHARED_CHAIN: 1}
        append_admin(engine, admin_record())
        writer = write(engine, 4)
        Checkpointer(engine, load_signing_key(keys["signing_key_file"])).write()
        assert formats(engine) == {"migrated-0003": 1, SHARED_CHAIN: 1, writer.chain_id: 2}
        report = verify_trail(engine, trusted(keys))
        assert report.ok, [p.describe() for p in report.problems]
        assert (report.chains, report.records, report.contents) == (3, 8, 1)
        mine = independent(url_at_0002, keys)
        assert mine.ok and mine.records == 8, mine.problems
    finally:
        engine.dispose()
