"""Migration 0006 fills the traffic rollup and the record tags from the stored records."""

from __future__ import annotations

from sqlalchemy import func, select

import migrations
from governance.access import Principal
from governance.audit import AuditWriter
from governance.audit.admin import admin_entry
from governance.audit.shared import append_shared
from governance.db import TrafficHourly, make_engine, session_factory
from tests.governance.test_traffic_rollup import T0, assert_rollup_matches, request


def test_rollup_and_tags_start_equal_to_the_stored_records(url_at_0005: str) -> None:
    engine = make_engine(url_at_0005)
    try:
        writer = AuditWriter(engine, batch_max=1000)  # no ledgers: revision 0005 has none
        writer.start()
        entries = [e for i in range(2600) for e in request(i)]  # more than one backfill batch
        for start in range(0, len(entries), 1000):
            writer.write_blocking(entries[start : start + 1000], timeout_s=60)
        writer.close()
        with session_factory(engine).begin() as session:  # its decision holds an "action"
            append_shared(
                session,
                admin_entry(
                    endpoint="policy.activate",
                    actor=Principal.operator("test"),
                    recorded_at=T0,
                    details={"action": "activate", "pii": {"EMAIL_ADDRESS": 1}},
                ),
            )
        migrations.upgrade(url_at_0005)
        records = assert_rollup_matches(engine)
        with session_factory(engine)() as session:
            requests = session.scalar(select(func.sum(TrafficHourly.requests)))
    finally:
        engine.dispose()
    assert len(records) == len(entries) + 1
    assert requests == 2600
