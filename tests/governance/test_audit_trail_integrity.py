"""The hash chains, checkpoints and `audit verify`, on real SQLite and PostgreSQL.

Tampering is done the way an insider would: SQL straight into the database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from governance.audit import AuditEntry, AuditWriter, RecordKind
from governance.audit.chain import GENESIS, hash_row
from governance.audit.checkpoint import Checkpointer, key_id_of, load_public_key, load_signing_key
from governance.audit.verify import verify_trail
from governance.db import AuditRecord
from governance.db.models import AuditChain
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
