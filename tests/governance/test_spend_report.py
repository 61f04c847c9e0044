"""Spend reports over the daily rollups, on SQLite and PostgreSQL: the figures equal sums
computed independently from the records the rollups were fed, to the last of twelve
decimal places (a float anywhere on the way would show), and currencies never mix."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine

from governance.access import Principal, Role
from governance.db import session_factory
from governance.errors import InvalidRequestError, PermissionDeniedError
from governance.spend.ledger import Ledger
from governance.spend.report import (
    DailySpend,
    SpendLine,
    daily_spend,
    plain_decimal,
    spend_report,
    totals,
)

FIRST_DAY = dt.date(2026, 3, 1)
DAYS = 12
TEAMS = ("search", "billing", None)
APPS = ("web", "batch", "chat")
# alias -> (upstream, deployment model, destination); None: a request that never routed
MODELS = {
    "gpt-4o-mini": ("openai", "gpt-4o-mini-2024-07-18", "external"),
    "llama": ("vllm-a", "llama-3.1-8b", "internal"),
    "llama-b": ("vllm-b", "llama-3.1-8b", "internal"),
    None: (None, None, None),
}


@dataclass(frozen=True, slots=True)
class Completed:
    """The fields of a completed audit record that the ledger counts."""

    recorded_at: dt.datetime
    app: str
    team: str | None
    requested_model: str | None
    upstream: str | None
    deployment_model: str | None
    destination: str | None
    input_tokens: int | None
    cached_input_tokens: int | None
    output_tokens: int | None
    cost: Decimal | None
    currency: str | None
    status: str = "ok"
    usage_estimated: bool = False
    kind: str = "completed"
    key_id: str = "k-1"
    end_user: str | None = None


def synthetic_records(first_day: dt.date = FIRST_DAY, days: int = DAYS) -> list[Completed]:
    """Several hundred requests over ``days`` days from ``first_day``: priced ones with
    twelve-decimal costs, estimated, unpriced and failed ones."""
    rng = random.Random(20261101)
    records = []
    for _ in range(400):
        day = first_day + dt.timedelta(days=rng.randrange(days))
        at = dt.datetime.combine(day, dt.time(rng.randrange(24), rng.randrange(60)), dt.UTC)
        model = rng.choice(list(MODELS))
        upstream, deployment, destination = MODELS[model]
        failed = model is None or rng.random() < 0.08
        inp = 0 if failed else rng.randrange(1, 5000)
        out = 0 if failed else rng.randrange(0, 800)
        unpriced = not failed and model == "llama-b" and rng.random() < 0.5
        priced = not failed and not unpriced
        # up to ~1000.000000000000: more significant digits than a float holds
        cost = Decimal(rng.randrange(1, 10**15)).scaleb(-12) if priced else None
        records.append(
            Completed(
                recorded_at=at,
                app=rng.choice(APPS),
                team=rng.choice(TEAMS),
                requested_model=model,
                upstream=upstream,
                deployment_model=deployment,
                destination=destination,
                input_tokens=inp or None,
                cached_input_tokens=(rng.randrange(0, inp) if inp and rng.random() < 0.3 else None),
                output_tokens=out if not failed else None,
                cost=cost,
                currency="USD" if priced else None,
                status="error" if failed else "ok",
                usage_estimated=not failed and rng.random() < 0.2,
            )
        )
    return records


def seed(engine: Engine, records: Iterable[Completed], batch: int = 37) -> None:
    """Feed records to the ledger in several transactions, as the audit writer would."""
    pending = list(records)
    ledger = Ledger()
    for start in range(0, len(pending), batch):
        with engine.begin() as connection:
            ledger.apply(connection, pending[start : start + batch])


def group_of(by: str) -> Callable[[Completed], tuple[str, ...]]:
    def key(r: Completed) -> tuple[str, ...]:
        if by == "upstream":
            return (r.upstream or "(none)", r.deployment_model or "(none)")
        value = {
            "team": r.team,
            "app": r.app,
            "model": r.requested_model,
            "destination": r.destination,
        }[by]
        return (value or "(none)",)

    return key


def expected_lines(
    records: Iterable[Completed], by: str, since: dt.date, until: dt.date | None
) -> dict[tuple[str, ...], dict[str, Any]]:
    """The report computed from the records themselves (one currency in the data)."""
    key = group_of(by)
    out: dict[tuple[str, ...], dict[str, Any]] = {}
    for r in records:
        day = r.recorded_at.date()
        if day < since or (until is not None and day > until):
            continue
        inp, out_tokens = r.input_tokens or 0, r.output_tokens or 0
        line = out.setdefault(
            key(r),
            {
                "requests": 0,
                "succeeded": 0,
                "estimated": 0,
                "unpriced": 0,
                "input_tokens": 0,
                "cached_input_tokens": 0,
                "output_tokens": 0,
                "cost": Decimal(0),
                "currency": "",
            },
        )
        line["requests"] += 1
        line["succeeded"] += r.status == "ok"
        line["estimated"] += r.usage_estimated
        line["unpriced"] += r.cost is None and inp + out_tokens > 0
        line["input_tokens"] += inp
        line["cached_input_tokens"] += r.cached_input_tokens or 0
        line["output_tokens"] += out_tokens
        line["cost"] += r.cost or Decimal(0)
        if r.currency:
            line["currency"] = r.currency
    return out


def as_dict(line: SpendLine) -> dict[str, object]:
    return {
        "requests": line.requests,
        "succeeded": line.succeeded,
        "estimated": line.estimated,
        "unpriced": line.unpriced,
        "input_tokens": line.input_tokens,
        "cached_input_tokens": line.cached_input_tokens,
        "output_tokens": line.output_tokens,
        "cost": line.cost,
        "currency": line.currency,
    }


def person(*roles: Role) -> Principal:
    return Principal("k-r", "th-r", None, None, "p-r", "reader", frozenset(roles))


FINANCE = person(Role.FINANCE)


@pytest.fixture
def seeded(fresh_engine: Engine) -> tuple[Engine, list[Completed]]:
    records = synthetic_records()
    seed(fresh_engine, records)
    return fresh_engine, records


@pytest.mark.parametrize("by", ["team", "app", "model", "upstream", "destination"])
def test_report_equals_the_sums_of_the_records(
    seeded: tuple[Engine, list[Completed]], by: str
) -> None:
    engine, records = seeded
    since, until = FIRST_DAY + dt.timedelta(days=2), FIRST_DAY + dt.timedelta(days=9)
    lines = spend_report(session_factory(engine), by, since, until, actor=FINANCE)
    expected = expected_lines(records, by, since, until)
    assert {line.group: as_dict(line) for line in lines} == expected
    assert len(lines) == len(expected)  # one line per group: nothing split
    for line in lines:
        assert line.cost.as_tuple().exponent >= -12
    assert [(-line.cost, line.group) for line in lines] == sorted(
        (-line.cost, line.group) for line in lines
    )
    # the window matters: records outside it are in the rollups but not in the report
    everything = spend_report(session_factory(engine), by, FIRST_DAY, actor=FINANCE)
    assert sum(line.requests for line in everything) == len(records)
    assert sum(line.requests for line in lines) < len(records)


def test_costs_are_exact_where_floats_would_drift(
    seeded: tuple[Engine, list[Completed]],
) -> None:
    engine, records = seeded
    lines = spend_report(session_factory(engine), "team", FIRST_DAY, actor=FINANCE)
    [total] = totals(lines)
    exact = sum((r.cost or Decimal(0) for r in records), Decimal(0))
    assert total.cost == exact and total.currency == "USD" and total.group == ("TOTAL",)
    as_float = sum(float(r.cost or 0) for r in records)
    assert Decimal(repr(as_float)) != exact  # the data would catch a float on the way
    assert total.requests == len(records)
    assert "E" not in plain_decimal(total.cost) and Decimal(plain_decimal(total.cost)) == exact


def test_upstream_lines_are_upstream_models_and_absent_values_show_as_none(
    seeded: tuple[Engine, list[Completed]],
) -> None:
    engine, _ = seeded
    lines = spend_report(session_factory(engine), "upstream", FIRST_DAY, actor=FINANCE)
    assert {line.group for line in lines} == {
        ("openai", "gpt-4o-mini-2024-07-18"),
        ("vllm-a", "llama-3.1-8b"),
        ("vllm-b", "llama-3.1-8b"),
        ("(none)", "(none)"),
    }
    unrouted = next(line for line in lines if line.group == ("(none)", "(none)"))
    assert unrouted.cost == 0 and unrouted.succeeded == 0 and unrouted.currency == ""
    vllm_b = next(line for line in lines if line.group == ("vllm-b", "llama-3.1-8b"))
    assert vllm_b.unpriced > 0 and vllm_b.currency == "USD"  # unpriced folded into its line
    assert unrouted.name == "(none) / (none)"


def test_daily_totals_add_up_to_the_report(seeded: tuple[Engine, list[Completed]]) -> None:
    engine, records = seeded
    sessions = session_factory(engine)
    days = daily_spend(sessions, "model", FIRST_DAY, actor=FINANCE)
    assert [d.day for d in days] == sorted(d.day for d in days)
    assert {d.day for d in days} == {r.recorded_at.date() for r in records}
    report = {
        line.group: line for line in spend_report(sessions, "model", FIRST_DAY, actor=FINANCE)
    }
    per_group: dict[tuple[str, ...], Decimal] = {}
    for d in days:
        assert isinstance(d, DailySpend)
        per_group[d.line.group] = per_group.get(d.line.group, Decimal(0)) + d.line.cost
    assert per_group == {group: line.cost for group, line in report.items()}
    one_day = FIRST_DAY + dt.timedelta(days=3)
    expected = expected_lines(records, "model", one_day, one_day)
    assert {d.line.group: as_dict(d.line) for d in days if d.day == one_day} == expected


def test_currencies_are_never_added(fresh_engine: Engine) -> None:
    at = dt.datetime(2026, 3, 2, 10, tzinfo=dt.UTC)
    usd = Completed(at, "web", "search", "m", "u", "x", "external", 10, None, 5, None, None)
    seed(
        fresh_engine,
        [
            replace(usd, cost=Decimal("1.000000000001"), currency="USD"),
            replace(usd, cost=Decimal("2.5"), currency="EUR"),
            replace(usd, input_tokens=None, output_tokens=None, status="error"),
            replace(usd, team="billing", cost=Decimal("0.25"), currency="EUR"),
        ],
    )
    sessions = session_factory(fresh_engine)
    lines = spend_report(sessions, "team", dt.date(2026, 3, 1), actor=FINANCE)
    assert [(line.group, line.currency, line.cost, line.requests) for line in lines] == [
        (("search",), "EUR", Decimal("2.5"), 1),
        (("search",), "USD", Decimal("1.000000000001"), 1),
        (("billing",), "EUR", Decimal("0.25"), 1),
        (("search",), "", Decimal(0), 1),  # two currencies: the failed request stands alone
    ]
    assert [(t.currency, t.cost, t.requests) for t in totals(lines)] == [
        ("EUR", Decimal("2.75"), 2),
        ("USD", Decimal("1.000000000001"), 1),
        ("", Decimal(0), 1),
    ]


def test_reading_needs_spend_read(seeded: tuple[Engine, list[Completed]]) -> None:
    engine, _ = seeded
    sessions = session_factory(engine)
    for role in (Role.POLICY_AUTHOR, Role.APP):
        with pytest.raises(PermissionDeniedError, match=r"may not spend:read"):
            spend_report(sessions, "team", FIRST_DAY, actor=person(role))
        with pytest.raises(PermissionDeniedError):
            daily_spend(sessions, "team", FIRST_DAY, actor=person(role))
    for role in (Role.SRE, Role.AUDITOR, Role.FINANCE, Role.ADMIN):
        assert spend_report(sessions, "team", FIRST_DAY, actor=person(role))


def test_a_bad_window_or_dimension_is_refused(fresh_engine: Engine) -> None:
    sessions = session_factory(fresh_engine)
    with pytest.raises(InvalidRequestError, match="before since"):
        spend_report(sessions, "team", FIRST_DAY, FIRST_DAY - dt.timedelta(days=1), actor=FINANCE)
    with pytest.raises(InvalidRequestError, match="cannot report by 'key'"):
        spend_report(sessions, "key", FIRST_DAY, actor=FINANCE)
    assert spend_report(sessions, "team", FIRST_DAY, actor=FINANCE) == []
