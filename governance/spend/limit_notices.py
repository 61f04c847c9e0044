"""What budget and rate-limit refusals and alerts say: messages naming the limit, the
subject, what was used and when it resets, as clients and operators read them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

from governance.errors import BudgetExceededError, RateLimitedError

if TYPE_CHECKING:
    from governance.spend.limits import BudgetUse


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')) if value >= 1 else value.normalize():f}"


def alert_summary(use: BudgetUse, level: str, currency: str) -> str:
    budget = use.budget
    state = "is used up" if level == "exhausted" else f"passed {budget.alert_at:.0%} of its limit"
    return f"Budget '{budget.name}' ({budget.period}, {budget.scope} '{use.subject}') {state}: " + (
        _spent(use, currency)
    )


def _spent(use: BudgetUse, currency: str) -> str:
    parts = []
    if use.budget.cost is not None:
        parts.append(f"{_money(use.spent_cost)} of {_money(use.budget.cost)} {currency}")
    if use.budget.tokens is not None:
        parts.append(f"{use.spent_tokens} of {use.budget.tokens} tokens")
    held = " (with requests in flight)" if use.held_cost or use.held_tokens else ""
    return " and ".join(parts) + " used" + held


def budget_error(use: BudgetUse, currency: str, now: dt.datetime) -> BudgetExceededError:
    budget = use.budget
    reset = use.resets_at.isoformat().replace("+00:00", "Z")
    period = "today" if budget.period == "daily" else "this month"
    return BudgetExceededError(
        f"Budget '{budget.name}' ({budget.period}, {budget.scope} '{use.subject}') is used up: "
        f"{_spent(use, currency)} {period}. It resets at {reset}.",
        type="insufficient_quota",
        code="budget_exceeded",
        retry_after_s=int((use.resets_at - now).total_seconds()) + 1,
        headers={"x-tollhouse-budget": budget.name, "x-tollhouse-budget-reset": reset},
    )


def rate_error(
    scope: str, name: str, requests: int, tokens: int, by_requests: bool, now: dt.datetime
) -> RateLimitedError:
    """``by_requests``: the requests limit refused (else the tokens limit)."""
    window_end = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    wait = max(1, int((window_end - now).total_seconds() + 0.999))
    kind, limit = ("requests", requests) if by_requests else ("tokens", tokens)
    return RateLimitedError(
        f"Rate limit reached for {scope} '{name}': {limit} {kind} per minute. "
        f"Try again in {wait} s.",
        type=kind,
        code="rate_limit_exceeded",
        retry_after_s=wait,
        headers={f"x-ratelimit-limit-{kind}": str(limit)},
    )
