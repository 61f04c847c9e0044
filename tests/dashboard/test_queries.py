"""The rollup-backed queries agree with the audit records they summarise."""

from __future__ import annotations

import bisect
import datetime as dt
import math

from sqlalchemy import select

from dashboard.queries import traffic
from governance.db import AuditRecord, make_engine, session_factory
from governance.db.traffic_models import LATENCY_BOUNDS_MS
from tests.dashboard.site import Site


def test_per_deployment_figures_equal_the_records(site: Site) -> None:
    engine = make_engine(site.url)
    sessions = session_factory(engine)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    frame = traffic.by_deployment(sessions, since).set_index(["upstream", "deployment model"])
    with sessions() as session:
        rows = session.execute(
            select(
                AuditRecord.upstream,
                AuditRecord.deployment_model,
                AuditRecord.status,
                AuditRecord.latency_ms,
            ).where(AuditRecord.kind == "completed", AuditRecord.upstream.is_not(None))
        ).all()
    engine.dispose()
    assert rows
    for (upstream, model), figures in frame.iterrows():
        mine = [r for r in rows if (r.upstream, r.deployment_model) == (upstream, model)]
        assert figures["requests"] == len(mine)
        errors = sum(r.status not in traffic.NOT_ERRORS for r in mine)
        assert math.isclose(figures["error rate"], errors / len(mine))
        latencies = sorted(r.latency_ms for r in mine)
        assert math.isclose(figures["mean latency ms"], sum(latencies) / len(latencies))
        median = latencies[math.ceil(0.5 * len(latencies)) - 1]
        assert figures["p50 ms"] == LATENCY_BOUNDS_MS[bisect.bisect_left(LATENCY_BOUNDS_MS, median)]
    assert frame["requests"].sum() == len(rows)
