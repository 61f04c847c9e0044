"""Spend totals per model alias, from completed audit records."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker

from governance.db.models import AuditRecord


@dataclass(frozen=True, slots=True)
class ModelSpend:
    model: str
    requests: int
    succeeded: int
    input_tokens: int
    output_tokens: int
    cost: Decimal
    currency: str | None


def spend_by_model(
    sessions: sessionmaker[Session], since: dt.datetime | None = None
) -> list[ModelSpend]:
    """Requests, tokens and exact cost per requested model (costs summed in Python,
    so SQLite's text-stored decimals stay exact)."""
    query = (
        select(
            AuditRecord.requested_model,
            func.count(),
            func.sum(case((AuditRecord.status == "ok", 1), else_=0)),
            func.coalesce(func.sum(AuditRecord.input_tokens), 0),
            func.coalesce(func.sum(AuditRecord.output_tokens), 0),
        )
        .where(AuditRecord.kind == "completed")
        .group_by(AuditRecord.requested_model)
        .order_by(AuditRecord.requested_model)
    )
    costs = select(AuditRecord.requested_model, AuditRecord.cost, AuditRecord.currency).where(
        AuditRecord.kind == "completed", AuditRecord.cost.is_not(None)
    )
    if since is not None:
        query = query.where(AuditRecord.recorded_at >= since)
        costs = costs.where(AuditRecord.recorded_at >= since)
    totals: dict[str | None, Decimal] = {}
    currencies: dict[str | None, str] = {}
    with sessions() as session:
        for model, cost, currency in session.execute(costs.execution_options(yield_per=5000)):
            totals[model] = totals.get(model, Decimal(0)) + (cost or Decimal(0))
            if currency:
                currencies[model] = currency
        rows = session.execute(query).all()
    return [
        ModelSpend(
            model=model or "(none)",
            requests=int(count),
            succeeded=int(ok or 0),
            input_tokens=int(inp),
            output_tokens=int(out),
            cost=totals.get(model, Decimal(0)),
            currency=currencies.get(model),
        )
        for model, count, ok, inp, out in rows
    ]
