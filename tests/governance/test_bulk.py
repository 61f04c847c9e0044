"""`BulkStatement` stores exactly what ``connection.execute`` stores, on both backends."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, cast

import pytest
from sqlalchemy import Engine, Table, insert, text

from governance.audit import AuditEntry, RecordKind
from governance.audit.records import CHAINED_ROW_KEYS, chained_row
from governance.db import AuditRecord
from governance.db.bulk import BulkStatement
from governance.db.models import AuditChain
from governance.db.spend_models import SpendDaily
from governance.db.upsert import AddingUpserts

_RECORDS = cast(Table, AuditRecord.__table__)


def _row(chain: str, seq: int, **fields: Any) -> dict[str, Any]:
    entry = AuditEntry(
        request_id=f"req_{chain}_{seq}",
        kind=RecordKind.COMPLETED,
        recorded_at=dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC),
        app="app-a",
        team=None,
        key_id="key-1",
        endpoint="chat.completions",
        status="ok",
        content_retention="none",
        **fields,
    )
    return chained_row(entry, chain, seq, "0" * 64)


ROWS = [
    {},
    {
        "stream": True,
        "cost": Decimal("0.000001234567"),
        "latency_ms": 12.5,
        "attempts": [{"upstream": "u", "status": 200, "nested": {"b": 1, "a": [None, "é"]}}],
        "decision": {"z": 1, "a": {"rules": ["r1"]}},
        "finish_reasons": ["stop"],
        "usage_estimated": True,
        "input_tokens": 0,
    },
]


def _stored(engine: Engine, chain: str) -> list[tuple[Any, ...]]:
    """The raw stored values, as the driver returns them (no SQLAlchemy types)."""
    columns = ", ".join(CHAINED_ROW_KEYS)
    query = f"SELECT {columns} FROM audit_records WHERE chain_id = :chain ORDER BY seq"  # noqa: S608
    with engine.connect() as connection:
        result = connection.execute(text(query), {"chain": chain})
        return [tuple(row) for row in result]


def _chains(engine: Engine, *names: str) -> None:
    with engine.begin() as connection:
        for name in names:
            connection.execute(
                insert(AuditChain).values(
                    chain_id=name,
                    format=2,
                    kind="writer",
                    writer="test",
                    started_at=dt.datetime.now(dt.UTC),
                    head_seq=0,
                    head_hash="0" * 64,
                )
            )


def test_records_are_stored_as_the_orm_statement_stores_them(fresh_engine: Engine) -> None:
    _chains(fresh_engine, "core", "bulk")
    bulk = BulkStatement(insert(_RECORDS), CHAINED_ROW_KEYS)
    with fresh_engine.begin() as connection:
        connection.execute(insert(_RECORDS), [_row("core", i, **f) for i, f in enumerate(ROWS, 1)])
        bulk.execute(connection, [_row("bulk", i, **f) for i, f in enumerate(ROWS, 1)])
        bulk.execute(connection, [])  # nothing to do, no error
    core, fast = _stored(fresh_engine, "core"), _stored(fresh_engine, "bulk")
    assert len(core) == len(ROWS)
    # The chain and request id differ by construction, and with them the hash.
    own = {CHAINED_ROW_KEYS.index(k) for k in ("chain_id", "request_id", "record_hash")}
    for a, b in zip(core, fast, strict=True):
        differing = [
            CHAINED_ROW_KEYS[i]
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            if x != y and i not in own
        ]
        assert differing == []
    # Stored types and values are what readers expect, e.g. the JSON text and money.
    assert fast[1][CHAINED_ROW_KEYS.index("stream")] in (True, 1)


def test_upserts_add_to_existing_rows(fresh_engine: Engine) -> None:
    upserts = AddingUpserts()
    keys = ("day", "app", "team", "model", "upstream", "deployment_model", "destination")
    row = {
        "day": dt.date(2026, 3, 1),
        "app": "a",
        "team": "",
        "model": "m",
        "upstream": "u",
        "deployment_model": "d",
        "destination": "internal",
        "currency": "USD",
        "requests": 1,
        "succeeded": 1,
        "estimated": 0,
        "unpriced": 0,
        "input_tokens": 10,
        "cached_input_tokens": 0,
        "output_tokens": 5,
        "cost": Decimal("0.000000000001"),
    }
    for _ in range(3):
        with fresh_engine.begin() as connection:
            upserts.execute(connection, SpendDaily, (*keys, "currency"), [row])
    with fresh_engine.connect() as connection:
        stored = connection.execute(
            text("SELECT requests, input_tokens, cost FROM spend_daily WHERE app = 'a'")
        ).one()
    assert (stored[0], stored[1], Decimal(str(stored[2]))) == (3, 30, Decimal("3e-12"))


def test_a_statement_whose_binds_differ_from_the_keys_is_refused(fresh_engine: Engine) -> None:
    bulk = BulkStatement(insert(_RECORDS), ("request_id", "not_a_column"))
    refused = pytest.raises(ValueError, match="differ from the row keys")
    with fresh_engine.begin() as connection, refused:
        bulk.execute(connection, [{"request_id": "r", "not_a_column": 1}])
