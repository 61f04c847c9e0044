"""The audit writer: group commit, durability on return, fail closed, recovery."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

import migrations
from governance.audit import AuditEntry, AuditWriter, RecordKind
from governance.db import AuditRecord, make_engine
from governance.errors import AuditUnavailableError


def entry(i: int) -> AuditEntry:
    return AuditEntry(
        request_id=f"req_{i}",
        kind=RecordKind.COMPLETED,
        recorded_at=dt.datetime.now(dt.UTC),
        app="a",
        team=None,
        key_id="k",
        endpoint="chat.completions",
        status="ok",
        content_retention="none",
        cost=Decimal("0.000000123456"),
        input_tokens=i,
    )


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def count(engine: Engine, prefix: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.scalar(
                select(func.count())
                .select_from(AuditRecord)
                .where(AuditRecord.request_id.like(f"{prefix}%"))
            )
            or 0
        )


def test_concurrent_writes_share_commits(engine: Engine) -> None:
    writer = AuditWriter(engine, batch_max=512)
    writer.start()

    async def burst() -> None:
        await asyncio.gather(*[writer.write([entry(i)], timeout_s=10) for i in range(400)])

    try:
        asyncio.run(burst())
    finally:
        writer.close()
    assert count(engine, "req_") >= 400
    assert writer.batches_committed < 400  # group commit, not one commit per record
    with engine.connect() as connection:
        cost = connection.scalar(select(AuditRecord.cost).where(AuditRecord.request_id == "req_7"))
    assert cost == Decimal("0.000000123456")


def test_blocking_and_nowait_writes(engine: Engine) -> None:
    writer = AuditWriter(engine)
    writer.start()
    writer.write_blocking([entry(10_001)], timeout_s=10)
    assert count(engine, "req_10001") == 1
    writer.write_nowait([entry(10_002)])
    writer.close()  # drains the queue
    assert count(engine, "req_10002") == 1
    with pytest.raises(AuditUnavailableError):
        writer.write_blocking([entry(10_003)], timeout_s=1)


def test_backpressure_refuses_quickly(engine: Engine) -> None:
    writer = AuditWriter(engine, queue_max=3)  # never started: nothing drains
    writer._thread = object()  # type: ignore[assignment]  # accept submissions
    writer.write_nowait([entry(1), entry(2)])
    with pytest.raises(AuditUnavailableError) as caught:
        writer.write_blocking([entry(3), entry(4)], timeout_s=1)
    assert caught.value.code == "audit_backpressure"


def test_failure_then_recovery(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    url = f"sqlite:///{path}"
    migrations.upgrade(url)
    engine = make_engine(url, busy_timeout_s=0.2)
    writer = AuditWriter(engine)
    writer.start()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    with pytest.raises(AuditUnavailableError):
        writer.write_blocking([entry(1)], timeout_s=5)
    assert writer.healthy is False
    blocker.execute("ROLLBACK")
    writer.write_blocking([entry(2)], timeout_s=5)
    assert writer.healthy is True
    writer.close()
    assert count(engine, "req_1") == 0 and count(engine, "req_2") == 1
    engine.dispose()
