"""Spend on the request path: the prices in force, what an answer cost, and budgets and
rate limits at admission.

Prices are read from the database at start-up and every ``spend.prices_refresh_s``
(a price loaded by another process is picked up without a restart; prices dated in the
future are loaded ahead and apply from their date). Budgets and rate limits come from
the policy decision; their database work runs off the event loop and only for requests
a budget or limit applies to.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from governance.access import Principal
from governance.config.schema import Settings
from governance.db import make_engine
from governance.errors import ServiceUnavailableError
from governance.spend.limits import InFlight, Limits, Subject
from governance.spend.price_file import read_price_file
from governance.spend.prices import PriceStore
from governance.spend.pricing import PriceBook
from governance.spend.tokens import EstimatingCounter, TokenCounter, token_counter
from proxy.calls import Call
from proxy.routing import Target
from proxy.usage import Usage

log = logging.getLogger(__name__)


class PriceCache:
    """The price book in force for this process, re-read periodically."""

    def __init__(self, store: PriceStore, interval_s: float) -> None:
        self._store = store
        self._interval_s = interval_s
        self.book = PriceBook()

    def refresh(self) -> None:
        self.book = self._store.book()

    async def watch(self) -> None:
        """Poll forever (a lifespan task); a failed poll keeps the last known prices."""
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:
                log.warning("could not re-read the price table; keeping the current one")


class Accounting:
    def __init__(
        self,
        prices: PriceCache,
        limits: Limits,
        in_flight: InFlight,
        counters: Mapping[str, TokenCounter],
        inflight_output_tokens: int,
        owned_engine: Engine | None = None,
    ) -> None:
        self._owned_engine = owned_engine
        self._prices = prices
        self._limits = limits
        self._in_flight = in_flight
        self._counters = counters
        self._default_counter = EstimatingCounter()
        self._inflight_output_tokens = inflight_output_tokens

    # -- usage and cost ------------------------------------------------------------
    def count(self, call: Call, text: str) -> int:
        """Tokens in ``text`` by the tokenizer of the upstream that answered (if known)."""
        target = call.target
        counter = self._counters.get(target.adapter.name) if target is not None else None
        return (counter or self._default_counter).count(text)

    def estimate_input(self, call: Call) -> int:
        assert call.request is not None
        return self.count(call, call.request.prompt_text())

    def charges(self, call: Call, usage: Usage) -> dict[str, Any]:
        """The usage and cost fields of a completed record: the price in force when the
        request started, for the upstream model that answered."""
        fields: dict[str, Any] = {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cached_input_tokens": usage.cached_input_tokens or None,
            "usage_estimated": usage.estimated,
        }
        target = call.target
        price = None
        if target is not None:
            price = self._prices.book.price_at(
                target.adapter.name, target.deployment.model, call.started_at
            )
        if price is not None:
            fields.update(
                cost=price.cost(usage.input_tokens, usage.output_tokens, usage.cached_input_tokens),
                currency=price.currency,
                price_id=price.id,
            )
        return fields

    # -- budgets and rate limits -----------------------------------------------------
    async def admit(self, call: Call) -> None:
        """Apply the decision's budgets and rate limits; raise 429 errors when one refuses.

        An admitted request under a budget holds its estimated cost until its completed
        record is committed (`release`), so this process's requests in flight count.
        """
        assert call.decision is not None and call.request is not None
        rules = call.decision.rules_in_force
        if not rules.budgets and not rules.rate_limits:
            return
        principal = call.principal
        subject = Subject(
            app=principal.traffic_app,
            team=principal.team,
            key_id=principal.key_id,
            end_user=call.request.user,
        )
        try:
            admission = await asyncio.to_thread(
                self._limits.admit, subject, rules.budgets, rules.rate_limits
            )
        except SQLAlchemyError as exc:
            raise ServiceUnavailableError(
                "Budgets and rate limits cannot be checked (the database is unavailable); "
                "request refused.",
                code="limits_unavailable",
            ) from exc
        call.limits = [use.trace() for use in admission.budgets] or None
        call.budget_uses = tuple(admission.budgets)
        if admission.refusal is not None:
            raise admission.refusal
        warnings = admission.warnings
        if warnings:
            call.headers["x-tollhouse-budget-warning"] = ", ".join(
                f"{use.budget.name}={use.fraction:.0%}" for use in warnings
            )
        if rules.budgets:
            assert call.route is not None
            self._hold(call, subject, call.route.permitted)

    def _hold(self, call: Call, subject: Subject, targets: list[Target]) -> None:
        assert call.body is not None
        input_tokens = self.estimate_input(call)
        max_tokens = call.body.get("max_completion_tokens") or call.body.get("max_tokens")
        output_tokens = max_tokens if isinstance(max_tokens, int) else self._inflight_output_tokens
        cost = Decimal(0)
        if targets:
            first = targets[0]
            price = self._prices.book.price_at(
                first.adapter.name, first.deployment.model, call.started_at
            )
            if price is not None:
                cost = price.cost(input_tokens, output_tokens)
        day = call.started_at.astimezone(dt.UTC).date()
        self._in_flight.hold(
            call.request_id, subject.counters(day), cost, input_tokens + output_tokens
        )

    def release(self, request_id: str) -> None:
        self._in_flight.release(request_id)

    def close(self) -> None:
        if self._owned_engine is not None:
            self._owned_engine.dispose()

    async def prune_periodically(self, interval_s: float = 60.0) -> None:
        """Delete old rate-limit windows (a lifespan task)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(self._limits.prune)
            except Exception:
                log.warning("could not prune old rate-limit windows")


def load_configured_prices(settings: Settings, store: PriceStore) -> None:
    """Load ``spend.prices_file`` into the price table (start-up; idempotent).

    A price file may be shared by deployments serving different models, so prices for
    models this configuration does not serve are loaded with a warning, not refused
    (``tollhouse prices load`` refuses them, to catch typos)."""
    path = settings.spend.prices_file
    if path is None:
        return
    document = read_price_file(Path(path))
    served = settings.deployed_models()
    for entry in document.prices:
        if (entry.upstream, entry.model) not in served:
            log.warning(
                "%s: no deployment here serves %s at upstream %s; its price is loaded anyway",
                path,
                entry.model,
                entry.upstream,
            )
    result = store.load(document, actor=Principal.operator("config"), source=path)
    if result.added:
        log.info("loaded %d new prices from %s", len(result.added), path)


def build_accounting(
    settings: Settings,
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: Callable[[], dt.datetime],
) -> tuple[Accounting, PriceCache]:
    """Prices (the configured file loaded first), limits and token counters."""
    store = PriceStore(sessions, settings.spend.currency, clock)
    load_configured_prices(settings, store)
    prices = PriceCache(store, settings.spend.prices_refresh_s)
    prices.refresh()
    in_flight = InFlight()
    counters = {
        u.name: token_counter(u.tokenizer_file) for u in settings.upstreams if u.tokenizer_file
    }
    # Admission's reads and rate counts need not wait for the disk on SQLite (a lost
    # count is harmless); PostgreSQL gets the same per transaction (`Limits`).
    counters_engine = (
        make_engine(
            settings.database_url, busy_timeout_s=settings.audit.write_timeout_s, durable=False
        )
        if engine.dialect.name == "sqlite"
        else engine
    )
    accounting = Accounting(
        prices,
        Limits(counters_engine, settings.spend.currency, in_flight, clock),
        in_flight,
        counters,
        settings.spend.inflight_output_tokens,
        counters_engine if counters_engine is not engine else None,
    )
    return accounting, prices
