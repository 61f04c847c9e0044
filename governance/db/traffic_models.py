"""Tables that make the dashboard's reads indexed: an hourly traffic rollup and record tags.

Both are derived from the audit records and written by the audit writer in the
transaction that inserts those records (like the spend rollups), so they always equal
what the records say. Neither is covered by a record's hash: they are indexes, and can be
rebuilt from the records at any time (migration 0006 does so for existing records).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from governance.db.models import Base
from governance.db.types import UTCDateTime

# Upper bounds (milliseconds) of the latency histogram buckets in `TrafficHourly`; the
# last bucket (``lat_b11``) counts everything slower than the last bound.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1_000.0,
    2_500.0,
    5_000.0,
    10_000.0,
    30_000.0,
    60_000.0,
)


class TrafficHourly(Base):
    """Completed requests per UTC hour and (app, team, model, upstream, deployment,
    destination, status, policy action).

    Text key columns hold ``''`` where a dimension is absent (see `SpendDaily`).
    ``redacted`` counts requests whose prompt was masked or pseudonymised before it left;
    ``pii_entities`` the entities found. ``lat_bNN`` is a latency histogram with the
    bounds in `LATENCY_BOUNDS_MS`, so percentiles per upstream come from the rollup.
    """

    __tablename__ = "traffic_hourly"
    __table_args__ = (Index("ix_traffic_hourly_upstream", "upstream", "hour"),)

    hour: Mapped[dt.datetime] = mapped_column(UTCDateTime(), primary_key=True)
    app: Mapped[str] = mapped_column(String(128), primary_key=True)
    team: Mapped[str] = mapped_column(String(128), primary_key=True)
    model: Mapped[str] = mapped_column(String(256), primary_key=True)
    upstream: Mapped[str] = mapped_column(String(128), primary_key=True)
    deployment_model: Mapped[str] = mapped_column(String(256), primary_key=True)
    destination: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(32), primary_key=True)
    action: Mapped[str] = mapped_column(String(16), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    redacted: Mapped[int] = mapped_column(BigInteger)
    pii_entities: Mapped[int] = mapped_column(BigInteger)
    retried: Mapped[int] = mapped_column(BigInteger)  # more than one upstream attempt
    latency_count: Mapped[int] = mapped_column(BigInteger)
    latency_ms_sum: Mapped[float] = mapped_column(Float)
    ttft_count: Mapped[int] = mapped_column(BigInteger)
    ttft_ms_sum: Mapped[float] = mapped_column(Float)
    lat_b00: Mapped[int] = mapped_column(BigInteger)
    lat_b01: Mapped[int] = mapped_column(BigInteger)
    lat_b02: Mapped[int] = mapped_column(BigInteger)
    lat_b03: Mapped[int] = mapped_column(BigInteger)
    lat_b04: Mapped[int] = mapped_column(BigInteger)
    lat_b05: Mapped[int] = mapped_column(BigInteger)
    lat_b06: Mapped[int] = mapped_column(BigInteger)
    lat_b07: Mapped[int] = mapped_column(BigInteger)
    lat_b08: Mapped[int] = mapped_column(BigInteger)
    lat_b09: Mapped[int] = mapped_column(BigInteger)
    lat_b10: Mapped[int] = mapped_column(BigInteger)
    lat_b11: Mapped[int] = mapped_column(BigInteger)


LATENCY_BUCKETS: tuple[str, ...] = tuple(f"lat_b{i:02d}" for i in range(len(LATENCY_BOUNDS_MS) + 1))


class AuditTag(Base):
    """A searchable fact about one audit record that is not a column of its own.

    Tags: ``action:<allow|route|block>`` (the policy's decision), ``pii:<ENTITY_TYPE>``
    (an entity type found in the prompt), ``redacted`` (the prompt was masked or
    pseudonymised). The audit log filters by ``(tag, recorded_at)`` and joins back on
    ``(chain_id, seq)``, which identifies a record on every backend.
    """

    __tablename__ = "audit_tags"
    __table_args__ = (Index("ix_audit_tags_tag_time", "tag", "recorded_at"),)

    tag: Mapped[str] = mapped_column(String(80), primary_key=True)
    chain_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
