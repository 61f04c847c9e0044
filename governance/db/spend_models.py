"""Tables of the spend domain: prices, daily rollups, budget and rate counters.

Counters and rollups are only ever changed by adding to them (``x = x + delta`` in one
statement), so processes sharing PostgreSQL never lose each other's updates. Text key
columns hold ``''`` rather than NULL where a dimension is absent, because a unique key
with a NULL in it never conflicts and an upsert would then insert duplicates.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from governance.db.models import Base, BigId
from governance.db.types import ExactDecimal, UTCDateTime


class PriceRecord(Base):
    """The price of one upstream model from ``effective_from`` (UTC) on, per million tokens.

    Rows are never changed: a new price is a new row with a later date. ``cached_input``
    NULL means cached input tokens cost the same as other input tokens. ``basis`` says how
    an internal rate was derived (GPU-hour cost and measured throughput), when it was.
    """

    __tablename__ = "prices"
    __table_args__ = (
        UniqueConstraint("upstream", "model", "effective_from", name="uq_prices_model_date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    upstream: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(256))
    effective_from: Mapped[dt.date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    input: Mapped[Decimal] = mapped_column(ExactDecimal())
    cached_input: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    output: Mapped[Decimal] = mapped_column(ExactDecimal())
    basis: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    source: Mapped[str] = mapped_column(String(256))
    loaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    loaded_by: Mapped[str] = mapped_column(String(128))


class SpendDaily(Base):
    """Completed requests per UTC day and (app, team, model, upstream, destination).

    Kept current by the audit writer in the transaction that writes the completed
    records, so it always equals the sum over those records.
    """

    __tablename__ = "spend_daily"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    app: Mapped[str] = mapped_column(String(128), primary_key=True)
    team: Mapped[str] = mapped_column(String(128), primary_key=True)
    model: Mapped[str] = mapped_column(String(256), primary_key=True)
    upstream: Mapped[str] = mapped_column(String(128), primary_key=True)
    deployment_model: Mapped[str] = mapped_column(String(256), primary_key=True)
    destination: Mapped[str] = mapped_column(String(16), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    succeeded: Mapped[int] = mapped_column(BigInteger)
    estimated: Mapped[int] = mapped_column(BigInteger)
    unpriced: Mapped[int] = mapped_column(BigInteger)
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    cached_input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cost: Mapped[Decimal] = mapped_column(ExactDecimal())


class UsageCounter(Base):
    """Spend of one budget subject in one period (a UTC day or month), for budgets.

    ``scope`` is app, team, key or end_user; ``subject`` the app name, team name, key id
    or end-user id; ``app`` qualifies an end user (``''`` for the other scopes).
    """

    __tablename__ = "usage_counters"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    app: Mapped[str] = mapped_column(String(128), primary_key=True)
    subject: Mapped[str] = mapped_column(String(256), primary_key=True)
    period: Mapped[str] = mapped_column(String(8), primary_key=True)
    period_start: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    tokens: Mapped[int] = mapped_column(BigInteger)
    cost: Mapped[Decimal] = mapped_column(ExactDecimal())


class RateCounter(Base):
    """Requests admitted and tokens used per key or app in one UTC minute."""

    __tablename__ = "rate_counters"
    __table_args__ = (Index("ix_rate_counters_window", "window_start"),)

    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    subject: Mapped[str] = mapped_column(String(128), primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime(), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    tokens: Mapped[int] = mapped_column(BigInteger)
