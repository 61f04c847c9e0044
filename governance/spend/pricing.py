"""Effective-dated prices per upstream model, and exact cost arithmetic.

A price is per million tokens, for one model at one upstream (``alpha`` serving
``llama-3.1-8b``), in force from its ``effective_from`` (a UTC date) until the next
price of that model. The price of a request is the one in force when it started: a new
price never applies to requests before its date, and stored costs are never recomputed.

Cost = uncached input x input + cached input x cached_input + output x output, all in
`Decimal`; prices have at most six decimals, so a cost has at most twelve and is exact.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from governance.db.spend_models import PriceRecord

_PER_TOKEN = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Price:
    id: int
    upstream: str
    model: str
    effective_from: dt.date
    currency: str
    input: Decimal
    cached_input: Decimal | None
    output: Decimal
    basis: dict[str, Any] | None = None  # what an internal rate was derived from

    @classmethod
    def of(cls, row: PriceRecord) -> Price:
        return cls(
            id=row.id,
            upstream=row.upstream,
            model=row.model,
            effective_from=row.effective_from,
            currency=row.currency,
            input=row.input,
            cached_input=row.cached_input,
            output=row.output,
            basis=row.basis,
        )

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> Decimal:
        """The exact cost of a request's tokens (``cached_input_tokens`` is a part of
        ``input_tokens``, as providers report it)."""
        cached = min(max(cached_input_tokens, 0), input_tokens)
        cached_price = self.input if self.cached_input is None else self.cached_input
        total = (input_tokens - cached) * self.input + cached * cached_price
        return (total + output_tokens * self.output) / _PER_TOKEN


class PriceBook:
    """Every price, by (upstream, model), sorted by date; immutable once built."""

    def __init__(self, prices: Iterable[Price] = ()) -> None:
        by_model: dict[tuple[str, str], list[Price]] = {}
        for price in prices:
            by_model.setdefault((price.upstream, price.model), []).append(price)
        self._prices = {
            key: sorted(ps, key=lambda p: p.effective_from) for key, ps in by_model.items()
        }
        self._dates = {key: [p.effective_from for p in ps] for key, ps in self._prices.items()}

    def price_at(self, upstream: str, model: str, at: dt.datetime) -> Price | None:
        """The price in force at ``at``, or None when the model has none yet."""
        dates = self._dates.get((upstream, model))
        if not dates:
            return None
        index = bisect.bisect_right(dates, at.astimezone(dt.UTC).date()) - 1
        return self._prices[(upstream, model)][index] if index >= 0 else None
