"""Migration 0004 fills the rollups and budget counters from the records already stored."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

import migrations
from governance.db import SpendDaily, UsageCounter, make_engine, session_factory
from governance.db.types import ExactDecimal, UTCDateTime


def test_rollups_start_equal_to_the_stored_records(url_at_0002: str) -> None:
    engine = make_engine(url_at_0002)
    old = sa.table(
        "audit_records",
        *(sa.column(n) for n in ("request_id", "kind", "app", "team", "key_id", "endpoint")),
        *(sa.column(n) for n in ("status", "content_retention", "requested_model", "upstream")),
        *(sa.column(n) for n in ("input_tokens", "output_tokens", "currency", "end_user")),
        sa.column("recorded_at", UTCDateTime(timezone=True)),
        sa.column("stream", sa.Boolean()),
        sa.column("usage_estimated", sa.Boolean()),
        sa.column("cost", ExactDecimal()),
    )
    costs = [Decimal("0.000000123457"), Decimal("1.5"), None, Decimal("0.333333333333")]
    rows = [
        {
            "request_id": f"req_{i}",
            "kind": kind,
            "recorded_at": dt.datetime(2026, 10, 30 + i // 2, 9, tzinfo=dt.UTC),
            "app": "billing",
            "team": "finance",
            "key_id": "k1",
            "end_user": "u-7",
            "endpoint": "chat.completions",
            "requested_model": "chat",
            "upstream": "vllm-a",
            "stream": False,
            "status": "ok",
            "usage_estimated": i == 3,
            "content_retention": "none",
            "input_tokens": 10 * (i + 1),
            "output_tokens": i,
            "cost": cost,
            "currency": "USD" if cost is not None else None,
        }
        for i, cost in enumerate(costs)
        for kind in ("admitted", "completed")
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(old), rows)
    migrations.upgrade(url_at_0002)
    with session_factory(engine)() as session:
        daily = {
            (r.day, r.currency): (r.requests, r.estimated, r.input_tokens, r.cost)
            for r in session.scalars(sa.select(SpendDaily))
        }
        months = {
            (c.scope, c.subject, c.period_start): (c.requests, c.tokens, c.cost)
            for c in session.scalars(sa.select(UsageCounter).where(UsageCounter.period == "month"))
        }
    engine.dispose()
    assert daily == {
        (dt.date(2026, 10, 30), "USD"): (2, 0, 30, Decimal("1.500000123457")),
        (dt.date(2026, 10, 31), ""): (1, 0, 30, Decimal(0)),
        (dt.date(2026, 10, 31), "USD"): (1, 1, 40, Decimal("0.333333333333")),
    }
    total = (4, 100 + 6, Decimal("1.833333456790"))
    for scope, subject in (("app", "billing"), ("team", "finance"), ("key", "k1")):
        assert months[(scope, subject, dt.date(2026, 10, 1))] == total
    assert months[("end_user", "u-7", dt.date(2026, 10, 1))] == total
