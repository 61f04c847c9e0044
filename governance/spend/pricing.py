"""Effective-dated prices and exact cost arithmetic.

Cost = input_tokens x input price + output_tokens x output price, prices per million
tokens, in `Decimal` end to end. The price in force is the latest one whose
``effective_from`` (a UTC date) is on or before the request's time: a new price
never applies retroactively.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from governance.config.schema import PriceConfig


@dataclass(frozen=True, slots=True)
class Cost:
    amount: Decimal
    currency: str
    effective_from: dt.date


class PriceTable:
    def __init__(self, prices: Iterable[PriceConfig]) -> None:
        by_model: dict[str, list[PriceConfig]] = {}
        for price in prices:
            by_model.setdefault(price.model, []).append(price)
        self._prices = {m: sorted(ps, key=lambda p: p.effective_from) for m, ps in by_model.items()}
        self._dates = {m: [p.effective_from for p in ps] for m, ps in self._prices.items()}

    def price_at(self, model: str, at: dt.datetime) -> PriceConfig | None:
        dates = self._dates.get(model)
        if not dates:
            return None
        index = bisect.bisect_right(dates, at.astimezone(dt.UTC).date()) - 1
        return self._prices[model][index] if index >= 0 else None

    def cost(
        self, model: str, at: dt.datetime, input_tokens: int, output_tokens: int
    ) -> Cost | None:
        """The exact cost, or None when no price is in force for the model at that time."""
        price = self.price_at(model, at)
        if price is None:
            return None
        amount = (input_tokens * price.input + output_tokens * price.output).scaleb(-6)
        return Cost(amount=amount, currency=price.currency, effective_from=price.effective_from)
