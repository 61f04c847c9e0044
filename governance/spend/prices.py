"""The price table in the database: loading price files, reading the book.

Rows are immutable. Loading a file adds the rows that are new, skips the ones already
stored with the same figures, and refuses (changing nothing) when a stored row would
change or when a new price for an already-priced model is dated before today: a price
change applies from its date, and requests before it keep the cost they were recorded
with. Each load that adds rows leaves a ``prices.load`` record on the admin chain.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from governance.access import Permission, Principal
from governance.audit.admin import admin_entry
from governance.audit.shared import append_shared
from governance.db.spend_models import PriceRecord
from governance.errors import InvalidRequestError
from governance.spend.price_file import PriceDocument, PriceEntry
from governance.spend.pricing import Price, PriceBook


class PriceChangeError(InvalidRequestError):
    """A price file would rewrite or backdate a stored price; nothing was loaded."""

    status = 409
    code = "price_immutable"


@dataclass(frozen=True, slots=True)
class LoadResult:
    added: list[Price] = field(default_factory=list)
    unchanged: int = 0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class PriceStore:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        currency: str,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self._sessions = sessions
        self._currency = currency
        self._clock = clock

    def book(self) -> PriceBook:
        """Every stored price in the configured currency."""
        with self._sessions() as session:
            rows = session.scalars(
                select(PriceRecord).where(PriceRecord.currency == self._currency)
            )
            return PriceBook(Price.of(row) for row in rows)

    def list(self, actor: Principal) -> list[Price]:
        actor.require(Permission.SPEND_READ)
        with self._sessions() as session:
            rows = session.scalars(
                select(PriceRecord).order_by(
                    PriceRecord.upstream, PriceRecord.model, PriceRecord.effective_from
                )
            )
            return [Price.of(row) for row in rows]

    def load(
        self,
        document: PriceDocument,
        *,
        actor: Principal,
        source: str,
        deployments: Collection[tuple[str, str]] | None = None,
    ) -> LoadResult:
        """Store the document's new prices (all or nothing); see the module docstring.

        ``deployments`` (upstream, model) pairs, when given, are the ones the
        configuration serves: a price for anything else is a typo and refused.
        """
        actor.require(Permission.PRICES_MANAGE)
        if document.currency != self._currency:
            raise InvalidRequestError(
                f"{source}: prices are in {document.currency} but spend.currency is "
                f"{self._currency}; Tollhouse keeps one currency",
                param="currency",
            )
        if deployments is not None:
            for i, entry in enumerate(document.prices):
                if (entry.upstream, entry.model) not in deployments:
                    served = ", ".join(f"{u}/{m}" for u, m in sorted(deployments))
                    raise InvalidRequestError(
                        f"{source}: prices[{i}]: no deployment serves {entry.model!r} at "
                        f"upstream {entry.upstream!r} (configured: {served or 'none'})",
                        param=f"prices[{i}]",
                    )
        for attempt in range(3):
            try:
                return self._load(document, actor, source)
            except IntegrityError:  # another process loaded the same rows meanwhile
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _load(self, document: PriceDocument, actor: Principal, source: str) -> LoadResult:
        now = self._clock()
        today = now.astimezone(dt.UTC).date()
        with self._sessions.begin() as session:
            models = {(e.upstream, e.model) for e in document.prices}
            stored: dict[tuple[str, str], list[PriceRecord]] = {}
            for row in session.scalars(select(PriceRecord)):
                if (row.upstream, row.model) in models:
                    stored.setdefault((row.upstream, row.model), []).append(row)
            added: list[PriceRecord] = []
            unchanged = 0
            for i, entry in enumerate(document.prices):
                existing = stored.get((entry.upstream, entry.model), [])
                same_day = next(
                    (r for r in existing if r.effective_from == entry.effective_from), None
                )
                if same_day is not None:
                    if not _same(same_day, entry, document.currency):
                        raise PriceChangeError(
                            f"{source}: prices[{i}]: {entry.upstream}/{entry.model} already has "
                            f"a different price from {entry.effective_from}; stored prices never "
                            "change: add a new price with a later effective_from"
                        )
                    unchanged += 1
                    continue
                if existing and entry.effective_from < today:
                    raise PriceChangeError(
                        f"{source}: prices[{i}]: {entry.upstream}/{entry.model} is already "
                        f"priced, so a new price cannot start in the past "
                        f"({entry.effective_from}, today is {today} UTC): it would contradict "
                        "the costs already recorded"
                    )
                added.append(_row(entry, document.currency, source, actor, now))
            if added:
                session.add_all(added)
                session.flush()
                details = {"source": source, "added": [_describe(r) for r in added]}
                append_shared(
                    session,
                    admin_entry(
                        endpoint="prices.load", actor=actor, recorded_at=now, details=details
                    ),
                )
            return LoadResult([Price.of(r) for r in added], unchanged)


def _row(
    entry: PriceEntry, currency: str, source: str, actor: Principal, now: dt.datetime
) -> PriceRecord:
    input_rate, cached, output, basis = entry.rates()
    return PriceRecord(
        upstream=entry.upstream,
        model=entry.model,
        effective_from=entry.effective_from,
        currency=currency,
        input=input_rate,
        cached_input=cached,
        output=output,
        basis=basis,
        source=source[:256],
        loaded_at=now,
        loaded_by=actor.name[:128],
    )


def _same(row: PriceRecord, entry: PriceEntry, currency: str) -> bool:
    input_rate, cached, output, basis = entry.rates()
    return (row.currency, row.input, row.cached_input, row.output, row.basis) == (
        currency,
        input_rate,
        cached,
        output,
        basis,
    )


def _describe(row: PriceRecord) -> dict[str, object]:
    return {
        "id": row.id,
        "upstream": row.upstream,
        "model": row.model,
        "effective_from": row.effective_from.isoformat(),
        "input": str(row.input),
        "cached_input": None if row.cached_input is None else str(row.cached_input),
        "output": str(row.output),
    }
