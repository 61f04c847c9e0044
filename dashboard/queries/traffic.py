"""Traffic over time and per upstream, from the hourly rollup (``traffic_hourly``).

The rollup holds one row per hour and combination of dimensions, so a month of traffic is
a few thousand rows however many requests it had; percentiles come from its latency
histogram (the upper bound of the bucket the percentile falls in, as Prometheus does).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from governance.audit.traffic import TrafficSums
from governance.db.traffic_models import LATENCY_BOUNDS_MS, LATENCY_BUCKETS, TrafficHourly

# How a request ended, as the overview counts it.
REFUSED = "rejected"  # refused by Tollhouse: policy, budget, rate limit, bad request
NOT_ERRORS = frozenset({"ok", REFUSED, "client_disconnected"})


def hourly(sessions: sessionmaker[Session], since: dt.datetime) -> pd.DataFrame:
    """Requests per hour from ``since`` on: columns hour, requests, refused, blocked
    (by a policy rule), redacted, errors, retried."""
    t = TrafficHourly
    query = (
        select(
            t.hour,
            t.status,
            t.action,
            func.sum(t.requests),
            func.sum(t.redacted),
            func.sum(t.retried),
        )
        .where(t.hour >= since)
        .group_by(t.hour, t.status, t.action)
    )
    with sessions() as session:
        rows = session.execute(query).all()
    frame = pd.DataFrame(
        rows, columns=["hour", "status", "action", "requests", "redacted", "retried"]
    )
    columns = ["requests", "refused", "blocked", "redacted", "errors", "retried"]
    if frame.empty:
        return pd.DataFrame(columns=["hour", *columns])
    for column in ("requests", "redacted", "retried"):  # PostgreSQL sums are NUMERIC
        frame[column] = frame[column].astype("int64")
    frame["refused"] = frame["requests"].where(frame["status"] == REFUSED, 0)
    frame["blocked"] = frame["requests"].where(frame["action"] == "block", 0)
    frame["errors"] = frame["requests"].where(~frame["status"].isin(NOT_ERRORS), 0)
    grouped = frame.groupby("hour", as_index=False)[columns].sum()
    return grouped.sort_values("hour").reset_index(drop=True)


def daily(hours: pd.DataFrame) -> pd.DataFrame:
    """`hourly` summed per UTC day (column ``day``)."""
    if hours.empty:
        return pd.DataFrame(columns=["day", *hours.columns.drop("hour")])
    frame = hours.assign(day=pd.to_datetime(hours["hour"], utc=True).dt.floor("D"))
    return frame.drop(columns="hour").groupby("day", as_index=False).sum()


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a latency histogram with `LATENCY_BOUNDS_MS`: the
    upper bound of the bucket it falls in (``inf`` past the last bound); None if empty."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank and count:
            return LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else float("inf")
    return float("inf")


_SUMMED = (
    "requests",
    "redacted",
    "pii_entities",
    "retried",
    "latency_count",
    "latency_ms_sum",
    "ttft_count",
    "ttft_ms_sum",
    *LATENCY_BUCKETS,
)


@dataclass(slots=True)
class _Deployment:
    sums: TrafficSums = field(default_factory=TrafficSums)
    errors: int = 0

    def row(self, upstream: str, model: str) -> dict[str, object]:
        s = self.sums

        def share(n: int) -> float:
            return n / s.requests if s.requests else 0.0

        return {
            "upstream": upstream,
            "deployment model": model,
            "requests": s.requests,
            "error rate": share(self.errors),
            "retried": share(s.retried),
            "mean latency ms": s.latency_ms_sum / s.latency_count if s.latency_count else None,
            "p50 ms": percentile(s.buckets, 0.50),
            "p90 ms": percentile(s.buckets, 0.90),
            "p99 ms": percentile(s.buckets, 0.99),
            "mean TTFT ms": s.ttft_ms_sum / s.ttft_count if s.ttft_count else None,
        }


def by_deployment(sessions: sessionmaker[Session], since: dt.datetime) -> pd.DataFrame:
    """Per (upstream, deployment model) from ``since`` on: requests, error rate, retried
    share, mean latency and TTFT, latency p50/p90/p99 (histogram bounds, ms)."""
    t = TrafficHourly
    query = (
        select(
            t.upstream,
            t.deployment_model,
            t.status,
            *(func.sum(getattr(t, name)).label(name) for name in _SUMMED),
        )
        .where(t.hour >= since, t.upstream != "")
        .group_by(t.upstream, t.deployment_model, t.status)
    )
    with sessions() as session:
        rows = session.execute(query).all()
    deployments: dict[tuple[str, str], _Deployment] = {}
    for row in rows:
        d = deployments.setdefault((row.upstream, row.deployment_model), _Deployment())
        d.sums.merge(row)
        d.errors += 0 if row.status in NOT_ERRORS else int(row.requests)
    return pd.DataFrame([d.row(u, m) for (u, m), d in sorted(deployments.items())])
