"""Budgets and rate limits at admission, held across processes by database counters.

A request is admitted when, for every budget that applies to it, the spend recorded in
``usage_counters`` plus the estimated spend of this process's requests still in flight
(`InFlight`) is below the limit. Completed requests add to the counters in the audit
writer's transaction (`governance.spend.ledger`). So a budget is overshot by at most what
was already in flight when it was reached: in one process, the error of the in-flight
estimates; across processes, the other processes' requests in flight.

Rate limits are counted in the same admission transaction (`governance.spend.rates`).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from governance.db.monitor_models import AlertRecord
from governance.db.spend_models import UsageCounter
from governance.errors import BudgetExceededError, RateLimitedError
from governance.policy.schema import Budget, RateLimit
from governance.spend.ledger import CounterKey, month_of
from governance.spend.limit_notices import alert_summary, budget_error
from governance.spend.rates import RateCounting, rate_scopes


@dataclass(frozen=True, slots=True)
class Subject:
    """Who a request is, for budgets and rate limits."""

    app: str
    team: str | None
    key_id: str
    end_user: str | None

    def counter(self, budget: Budget, day: dt.date) -> CounterKey | None:
        """The ``usage_counters`` row ``budget`` reads for this subject, if it applies."""
        period = "day" if budget.period == "daily" else "month"
        start = day if period == "day" else month_of(day)
        if budget.scope == "app":
            return ("app", "", self.app, period, start)
        if budget.scope == "key":
            return ("key", "", self.key_id, period, start)
        if budget.scope == "team":
            return ("team", "", self.team, period, start) if self.team else None
        return ("end_user", self.app, self.end_user, period, start) if self.end_user else None

    def counters(self, day: dt.date) -> list[CounterKey]:
        """Every counter a request of this subject adds to (for in-flight holds)."""
        keys: list[CounterKey] = []
        for scope, app, subject in (
            ("app", "", self.app),
            ("key", "", self.key_id),
            ("team", "", self.team),
            ("end_user", self.app, self.end_user),
        ):
            if subject:
                keys.append((scope, app, subject, "day", day))
                keys.append((scope, app, subject, "month", month_of(day)))
        return keys


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """A budget's state as one request's admission saw it."""

    budget: Budget
    subject: str
    spent_cost: Decimal  # recorded plus held by this process's requests in flight
    spent_tokens: int
    resets_at: dt.datetime
    held_cost: Decimal = Decimal(0)
    held_tokens: int = 0

    @property
    def fraction(self) -> float:
        """The larger of cost and token use, as a fraction of the limit."""
        fractions = [0.0]
        if self.budget.cost is not None:
            fractions.append(float(self.spent_cost / self.budget.cost))
        if self.budget.tokens is not None:
            fractions.append(self.spent_tokens / self.budget.tokens)
        return max(fractions)

    @property
    def exhausted(self) -> bool:
        cost, tokens = self.budget.cost, self.budget.tokens
        return (cost is not None and self.spent_cost >= cost) or (
            tokens is not None and self.spent_tokens >= tokens
        )

    def trace(self) -> dict[str, Any]:
        return {
            "budget": self.budget.name,
            "scope": self.budget.scope,
            "subject": self.subject,
            "period": self.budget.period,
            "spent": str(self.spent_cost),
            "tokens": self.spent_tokens,
            "limit": None if self.budget.cost is None else str(self.budget.cost),
            "token_limit": self.budget.tokens,
            "in_flight": {"cost": str(self.held_cost), "tokens": self.held_tokens},
        }


@dataclass(frozen=True, slots=True)
class Admission:
    """What admission saw; ``refusal`` is the error to answer with when a limit refused."""

    budgets: list[BudgetUse] = field(default_factory=list)
    refusal: BudgetExceededError | RateLimitedError | None = None

    @property
    def warnings(self) -> list[BudgetUse]:
        """Budgets past their alert threshold (the request was still admitted)."""
        return [u for u in self.budgets if u.fraction >= u.budget.alert_at]


class InFlight:
    """Estimated spend of this process's admitted requests whose completed record is not
    committed yet, per budget counter. Thread-safe (admission reads it off the loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[CounterKey, tuple[Decimal, int]] = {}
        self._holds: dict[str, tuple[list[CounterKey], Decimal, int]] = {}

    def hold(self, request_id: str, keys: list[CounterKey], cost: Decimal, tokens: int) -> None:
        with self._lock:
            self._holds[request_id] = (keys, cost, tokens)
            for key in keys:
                held_cost, held_tokens = self._totals.get(key, (Decimal(0), 0))
                self._totals[key] = (held_cost + cost, held_tokens + tokens)

    def release(self, request_id: str) -> None:
        with self._lock:
            held = self._holds.pop(request_id, None)
            if held is None:
                return
            keys, cost, tokens = held
            for key in keys:
                held_cost, held_tokens = self._totals[key]
                left_cost, left_tokens = held_cost - cost, held_tokens - tokens
                if left_cost == 0 and left_tokens == 0:
                    del self._totals[key]
                else:
                    self._totals[key] = (left_cost, left_tokens)

    def of(self, key: CounterKey) -> tuple[Decimal, int]:
        with self._lock:
            return self._totals.get(key, (Decimal(0), 0))


def resets_at(period: str, day: dt.date) -> dt.datetime:
    """When a daily or monthly period that contains ``day`` ends (UTC midnight)."""
    if period == "daily":
        end = day + dt.timedelta(days=1)
    else:
        end = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return dt.datetime(end.year, end.month, end.day, tzinfo=dt.UTC)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Limits:
    """The database side of admission: budget reads, rate counting, budget alerts."""

    def __init__(
        self,
        engine: Engine,
        currency: str,
        in_flight: InFlight,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self._engine = engine
        self._currency = currency
        self._in_flight = in_flight
        self._clock = clock
        self._alerted: set[str] = set()
        self._alert_lock = threading.Lock()
        self._rates = RateCounting()

    def admit(
        self, subject: Subject, budgets: Sequence[Budget], rate_limits: Sequence[RateLimit]
    ) -> Admission:
        """Check every budget, then count the request against the rate limits. When one
        refuses, nothing is counted and the admission carries the refusal."""
        now = self._clock()
        day = now.date()
        applicable = [(b, key) for b in budgets if (key := subject.counter(b, day)) is not None]
        uses: list[BudgetUse] = []
        refusal: BudgetExceededError | RateLimitedError | None = None
        try:
            with self._engine.begin() as connection:
                stored = self._read_counters(connection, [key for _, key in applicable])
                for budget, key in applicable:
                    cost, tokens = stored.get(key, (Decimal(0), 0))
                    held_cost, held_tokens = self._in_flight.of(key)
                    uses.append(
                        BudgetUse(
                            budget,
                            key[2],
                            cost + held_cost,
                            tokens + held_tokens,
                            resets_at(budget.period, day),
                            held_cost,
                            held_tokens,
                        )
                    )
                exhausted = next((u for u in uses if u.exhausted), None)
                if exhausted is not None:
                    refusal = budget_error(exhausted, self._currency, now)
                else:
                    # Raises when a limit refuses: the transaction rolls back the counts.
                    self._rates.count(connection, rate_scopes(subject, rate_limits), now)
        except RateLimitedError as limited:
            refusal = limited
        admission = Admission(uses, refusal)
        self._raise_alerts(admission, now)
        return admission

    # -- budgets -------------------------------------------------------------------
    @staticmethod
    def _read_counters(
        connection: Connection, keys: list[CounterKey]
    ) -> dict[CounterKey, tuple[Decimal, int]]:
        if not keys:
            return {}
        columns = (
            UsageCounter.scope,
            UsageCounter.app,
            UsageCounter.subject,
            UsageCounter.period,
            UsageCounter.period_start,
        )
        rows = connection.execute(
            select(*columns, UsageCounter.cost, UsageCounter.tokens).where(
                tuple_(*columns).in_(keys)
            )
        )
        return {
            (scope, app, subject, period, start): (cost, tokens)
            for scope, app, subject, period, start, cost, tokens in rows
        }

    def _raise_alerts(self, admission: Admission, now: dt.datetime) -> None:
        """One alert per budget, subject, period and level (soft, exhausted)."""
        alerts = []
        for use in admission.budgets:
            level = "exhausted" if use.exhausted else "soft"
            if not use.exhausted and use.fraction < use.budget.alert_at:
                continue
            period = use.resets_at.date().isoformat()
            dedupe = f"budget:{use.budget.name}:{use.budget.scope}:{use.subject}:{period}:{level}"
            with self._alert_lock:
                if dedupe in self._alerted:
                    continue
            alerts.append((dedupe, level, use))
        if not alerts:
            return
        insert = postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        rows = [
            {
                "dedupe_key": dedupe[:400],
                "kind": f"budget.{level}",
                "severity": "critical" if level == "exhausted" else "warning",
                "subject": f"{use.budget.scope}:{use.subject}"[:300],
                "summary": alert_summary(use, level, self._currency),
                "details": use.trace(),
                "raised_at": now,
            }
            for dedupe, level, use in alerts
        ]
        with self._engine.begin() as connection:
            connection.execute(
                insert(cast(Table, AlertRecord.__table__)).on_conflict_do_nothing(
                    index_elements=["dedupe_key"]
                ),
                rows,
            )
        with self._alert_lock:
            self._alerted.update(dedupe for dedupe, _, _ in alerts)

    def prune(self, keep: dt.timedelta = dt.timedelta(minutes=10)) -> int:
        """Delete rate windows older than ``keep``; return how many."""
        return self._rates.prune(self._engine, self._clock() - keep)
