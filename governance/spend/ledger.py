"""Adding completed requests to the spend rollups and the budget and rate counters.

The audit writer calls `Ledger.apply` inside the transaction that inserts the records,
so the rollups and counters commit together with the records they count: they always
equal the sums over the completed records, and no request is counted twice or lost.
Each batch is summed in memory first, then every affected row gets one atomic upsert
(``x = x + delta``), in a fixed order so that writers of several processes sharing
PostgreSQL take row locks in the same order and never deadlock.

A request counts on the UTC day (and month) its completed record was written; its
price is the one in force when it started (`governance.spend.pricing`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Connection

from governance.db.spend_models import RateCounter, SpendDaily, UsageCounter
from governance.db.upsert import AddingUpserts


class Countable(Protocol):
    """What the ledger reads of a record (an `AuditEntry` or a stored row)."""

    @property
    def kind(self) -> str: ...
    @property
    def recorded_at(self) -> dt.datetime: ...
    @property
    def status(self) -> str: ...
    @property
    def app(self) -> str: ...
    @property
    def team(self) -> str | None: ...
    @property
    def key_id(self) -> str: ...
    @property
    def end_user(self) -> str | None: ...
    @property
    def requested_model(self) -> str | None: ...
    @property
    def upstream(self) -> str | None: ...
    @property
    def deployment_model(self) -> str | None: ...
    @property
    def destination(self) -> str | None: ...
    @property
    def input_tokens(self) -> int | None: ...
    @property
    def cached_input_tokens(self) -> int | None: ...
    @property
    def output_tokens(self) -> int | None: ...
    @property
    def usage_estimated(self) -> bool: ...
    @property
    def cost(self) -> Decimal | None: ...
    @property
    def currency(self) -> str | None: ...


@dataclass(slots=True)
class SpendSums:
    """Requests, tokens and cost summed over records (`add`) or other sums (`merge`)."""

    requests: int = 0
    succeeded: int = 0
    estimated: int = 0
    unpriced: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = Decimal(0)

    def merge(self, other: Any) -> None:
        """Add another sum, or a rollup row (anything with these fields)."""
        self.requests += int(other.requests)
        self.succeeded += int(other.succeeded)
        self.estimated += int(other.estimated)
        self.unpriced += int(other.unpriced)
        self.input_tokens += int(other.input_tokens)
        self.cached_input_tokens += int(other.cached_input_tokens)
        self.output_tokens += int(other.output_tokens)
        self.cost += other.cost

    def add(self, record: Countable) -> None:
        """Count one completed record."""
        inp = record.input_tokens or 0
        out = record.output_tokens or 0
        self.requests += 1
        self.succeeded += record.status == "ok"
        self.estimated += bool(record.usage_estimated)
        self.unpriced += record.cost is None and inp + out > 0
        self.input_tokens += inp
        self.cached_input_tokens += record.cached_input_tokens or 0
        self.output_tokens += out
        self.cost += record.cost or Decimal(0)


DailyKey = tuple[dt.date, str, str, str, str, str, str, str]
CounterKey = tuple[str, str, str, str, dt.date]  # scope, app, subject, period, period_start
RateKey = tuple[str, str, dt.datetime]  # scope, subject, window_start

_DAILY_KEYS = ("day", "app", "team", "model", "upstream", "deployment_model", "destination")
_COUNTER_KEYS = ("scope", "app", "subject", "period", "period_start")
_RATE_KEYS = ("scope", "subject", "window_start")


def month_of(day: dt.date) -> dt.date:
    return day.replace(day=1)


def minute_of(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(second=0, microsecond=0)


def counter_subjects(
    app: str, team: str | None, key_id: str, end_user: str | None
) -> list[tuple[str, str, str]]:
    """(scope, app, subject) of every budget counter a request adds to."""
    subjects = [("app", "", app), ("key", "", key_id)]
    if team:
        subjects.append(("team", "", team))
    if end_user:
        subjects.append(("end_user", app, end_user))
    return subjects


@dataclass(slots=True)
class Totals:
    """One batch (or a whole table's worth of records), summed per row to update."""

    daily: dict[DailyKey, SpendSums]
    counters: dict[CounterKey, SpendSums]
    rates: dict[RateKey, int]

    @classmethod
    def of(cls, records: Iterable[Countable]) -> Totals:
        totals = cls({}, {}, {})
        for record in records:
            if record.kind == "completed":
                totals.add(record)
        return totals

    def add(self, record: Countable) -> None:
        at = record.recorded_at.astimezone(dt.UTC)
        day = at.date()
        daily_key: DailyKey = (
            day,
            record.app,
            record.team or "",
            record.requested_model or "",
            record.upstream or "",
            record.deployment_model or "",
            record.destination or "",
            record.currency or "",
        )
        self.daily.setdefault(daily_key, SpendSums()).add(record)
        for scope, app, subject in counter_subjects(
            record.app, record.team, record.key_id, record.end_user
        ):
            for period, start in (("day", day), ("month", month_of(day))):
                self.counters.setdefault((scope, app, subject, period, start), SpendSums()).add(
                    record
                )
        tokens = (record.input_tokens or 0) + (record.output_tokens or 0)
        if tokens:
            window = minute_of(at)
            for scope, subject in (("key", record.key_id), ("app", record.app)):
                key = (scope, subject, window)
                self.rates[key] = self.rates.get(key, 0) + tokens


class Ledger:
    """Applies `Totals` with one upsert per table, inside the caller's transaction."""

    def __init__(self) -> None:
        self._upserts = AddingUpserts()

    def apply(self, connection: Connection, records: Sequence[Countable]) -> None:
        totals = Totals.of(records)
        if totals.daily:
            self.apply_totals(connection, totals)

    def apply_totals(self, connection: Connection, totals: Totals) -> None:
        daily = [
            {
                **dict(zip((*_DAILY_KEYS, "currency"), key, strict=True)),
                "requests": s.requests,
                "succeeded": s.succeeded,
                "estimated": s.estimated,
                "unpriced": s.unpriced,
                "input_tokens": s.input_tokens,
                "cached_input_tokens": s.cached_input_tokens,
                "output_tokens": s.output_tokens,
                "cost": s.cost,
            }
            for key, s in sorted(totals.daily.items())
        ]
        self._upserts.execute(connection, SpendDaily, (*_DAILY_KEYS, "currency"), daily)
        counters = [
            {
                **dict(zip(_COUNTER_KEYS, key, strict=True)),
                "requests": s.requests,
                "tokens": s.input_tokens + s.output_tokens,
                "cost": s.cost,
            }
            for key, s in sorted(totals.counters.items())
        ]
        self._upserts.execute(connection, UsageCounter, _COUNTER_KEYS, counters)
        if totals.rates:
            rates = [
                {**dict(zip(_RATE_KEYS, key, strict=True)), "requests": 0, "tokens": tokens}
                for key, tokens in sorted(totals.rates.items())
            ]
            self._upserts.execute(connection, RateCounter, _RATE_KEYS, rates)
