"""Spend page reads: budgets of the active policy with their use, burn-down series, top
consumers. Totals and time series come from `governance.spend.report` (daily rollups)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from governance.db.models import ApiKey, PrincipalRecord
from governance.db.spend_models import SpendDaily, UsageCounter
from governance.policy.schema import Budget, Policy
from governance.spend.ledger import month_of
from governance.spend.limits import resets_at

_PERIOD = {"daily": "day", "monthly": "month"}


@dataclass(frozen=True, slots=True)
class BudgetRow:
    """One budget as it stands for one subject in the current period."""

    budget: Budget
    subject: str
    app: str  # the app of an end-user subject, else ''
    period_start: dt.date
    spent_cost: Decimal
    spent_tokens: int
    resets_at: dt.datetime

    @property
    def fraction(self) -> float:
        parts = [0.0]
        if self.budget.cost is not None and self.budget.cost > 0:
            parts.append(float(self.spent_cost / self.budget.cost))
        if self.budget.tokens is not None:
            parts.append(self.spent_tokens / self.budget.tokens)
        return max(parts)

    @property
    def state(self) -> str:
        if self.fraction >= 1.0:
            return "exhausted"
        return "alerting" if self.fraction >= self.budget.alert_at else "ok"


def _period_start(budget: Budget, today: dt.date) -> dt.date:
    return today if budget.period == "daily" else month_of(today)


def budget_rows(sessions: sessionmaker[Session], policy: Policy, today: dt.date) -> list[BudgetRow]:
    """Every budget of ``policy`` that applies to a subject with use in the current
    period, fullest first. Which budgets apply follows the policy's overrides: an app's
    (or an end user's) rules are ``policy.rules_for(app, team)``; a team's and a key's are
    looked up through the app they belong to."""
    with sessions() as session:
        counters = session.scalars(
            select(UsageCounter).where(
                UsageCounter.period_start.in_({today, month_of(today)}),
            )
        ).all()
        teams_of_app: dict[str, str | None] = {}
        apps_of_team: dict[str, str] = {}
        for app, team in session.execute(select(SpendDaily.app, SpendDaily.team).distinct()):
            teams_of_app.setdefault(app, team or None)
            if team:
                apps_of_team.setdefault(team, app)
        key_apps = {
            key_id: (app, team)
            for key_id, app, team in session.execute(
                select(ApiKey.id, PrincipalRecord.app, PrincipalRecord.team).join(
                    PrincipalRecord, ApiKey.principal_id == PrincipalRecord.id
                )
            )
        }
    rows: list[BudgetRow] = []
    for counter in counters:
        who = _owner(counter, teams_of_app, apps_of_team, key_apps)
        if who is None:
            continue
        rules, _ = policy.rules_for(*who)
        for budget in rules.budgets:
            if budget.scope != counter.scope or _PERIOD[budget.period] != counter.period:
                continue
            if counter.period_start != _period_start(budget, today):
                continue
            rows.append(
                BudgetRow(
                    budget,
                    counter.subject,
                    counter.app,
                    counter.period_start,
                    Decimal(counter.cost),
                    int(counter.tokens),
                    resets_at(counter.period, counter.period_start),
                )
            )
    return sorted(rows, key=lambda r: (-r.fraction, r.budget.name, r.subject))


def _owner(
    counter: UsageCounter,
    teams_of_app: dict[str, str | None],
    apps_of_team: dict[str, str],
    key_apps: dict[str, tuple[str | None, str | None]],
) -> tuple[str, str | None] | None:
    """The (app, team) whose rules govern a counter's subject, if known."""
    if counter.scope == "app":
        return counter.subject, teams_of_app.get(counter.subject)
    if counter.scope == "end_user":
        return counter.app, teams_of_app.get(counter.app)
    if counter.scope == "team":
        app = apps_of_team.get(counter.subject)
        return None if app is None else (app, counter.subject)
    app, team = key_apps.get(counter.subject, (None, None))
    return None if app is None else (app, team)


def burn_down(sessions: sessionmaker[Session], row: BudgetRow, today: dt.date) -> pd.DataFrame:
    """Cumulative use per day of a monthly budget's period (or the last 30 days' daily use
    of a daily budget), as a fraction of its limit: columns day, used, limit (1.0)."""
    monthly = row.budget.period == "monthly"
    first = row.period_start if monthly else today - dt.timedelta(days=29)
    with sessions() as session:
        days = session.execute(
            select(UsageCounter.period_start, UsageCounter.cost, UsageCounter.tokens).where(
                UsageCounter.scope == row.budget.scope,
                UsageCounter.app == row.app,
                UsageCounter.subject == row.subject,
                UsageCounter.period == "day",
                UsageCounter.period_start >= first,
                UsageCounter.period_start <= today,
            )
        ).all()
    fractions: list[tuple[dt.date, float]] = []
    cost, tokens = Decimal(0), 0
    for day, day_cost, day_tokens in sorted(days):
        if monthly:  # a month's use accumulates; a daily budget starts afresh each day
            cost, tokens = cost + Decimal(day_cost), tokens + int(day_tokens)
        else:
            cost, tokens = Decimal(day_cost), int(day_tokens)
        use = BudgetRow(row.budget, row.subject, row.app, first, cost, tokens, row.resets_at)
        fractions.append((day, use.fraction))
    frame = pd.DataFrame(fractions, columns=["day", "used"])
    frame["limit"] = 1.0
    return frame


def top_consumers(
    sessions: sessionmaker[Session], scope: str, period_start: dt.date, limit: int = 10
) -> pd.DataFrame:
    """The subjects of ``scope`` (app, team, key, end_user) that spent most in the month
    starting ``period_start``: columns subject, app, requests, tokens, cost."""
    with sessions() as session:
        rows = session.execute(
            select(
                UsageCounter.subject,
                UsageCounter.app,
                UsageCounter.requests,
                UsageCounter.tokens,
                UsageCounter.cost,
            )
            .where(
                UsageCounter.scope == scope,
                UsageCounter.period == "month",
                UsageCounter.period_start == period_start,
            )
            .order_by(UsageCounter.cost.desc(), UsageCounter.tokens.desc())
            .limit(limit)
        ).all()
    return pd.DataFrame(rows, columns=["subject", "app", "requests", "tokens", "cost"])
