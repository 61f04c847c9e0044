"""Spend through a running proxy: exact costs for every request shape, rollups that equal
the audit trail, prices that change on their date, budgets and rate limits."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from sqlalchemy import select

from governance.access import Principal
from governance.db import AlertRecord, AuditRecord, SpendDaily, UsageCounter
from governance.pii import TextAnalyzer
from governance.spend.price_file import PriceDocument
from governance.spend.prices import PriceChangeError, PriceStore
from governance.spend.pricing import Price
from tests.proxy.conftest import SUITE_POLICY, Harness, running_proxy
from tests.upstream.faulty import Fault, FaultyUpstream

ASK = [{"role": "user", "content": "Count the apples in the basket, please."}]
# A system prompt long enough that the upstream serves it from its prefix cache.
CACHED = [
    {"role": "system", "content": " ".join(["You answer questions about fruit."] * 8)},
    *ASK,
]
MILLION = Decimal(1_000_000)


def expected_cost(record: AuditRecord, price: Price) -> Decimal:
    """The cost by the formula in docs/spend.md, computed here independently."""
    cached = record.cached_input_tokens or 0
    cached_price = price.input if price.cached_input is None else price.cached_input
    return (
        (record.input_tokens - cached) * price.input
        + cached * cached_price
        + record.output_tokens * price.output
    ) / MILLION


def run_every_shape(proxy: Harness) -> None:
    """Unary, streamed (with and without usage asked), cached prompts, legacy
    completions, embeddings, no usage reported, streams cut short three ways, a refusal,
    and an unpriced model."""
    client = proxy.client()
    client.chat.completions.create(model="chat-default", messages=ASK)
    client.chat.completions.create(model="chat-fallback", messages=CACHED)
    for options in (None, {"include_usage": True}):
        extra = {"stream_options": options} if options else {}
        list(
            client.chat.completions.create(model="chat-default", messages=ASK, stream=True, **extra)
        )
    list(client.chat.completions.create(model="chat-fallback", messages=CACHED, stream=True))
    client.completions.create(model="chat-default", prompt="Once upon a time")
    client.embeddings.create(model="embed-default", input=["one text", "and another text"])
    client.chat.completions.create(model="chat-unpriced", messages=ASK)
    proxy.alpha.inject(Fault("no_usage"))
    client.chat.completions.create(model="chat-default", messages=ASK)
    for kind in ("drop_mid_stream", "in_stream_error"):
        proxy.alpha.inject(Fault(kind, after_events=3))
        with pytest.raises(openai.APIError):
            list(client.chat.completions.create(model="chat-default", messages=ASK, stream=True))
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=ASK)


def completed(proxy: Harness) -> list[AuditRecord]:
    return [r for r in proxy.all_records() if r.kind == "completed" and r.app != "tollhouse-admin"]


@pytest.fixture
def fresh_proxy(
    fresh_database_url: str,
    upstreams: tuple[FaultyUpstream, FaultyUpstream],
    analyzer: TextAnalyzer,
) -> Iterator[Harness]:
    for upstream in upstreams:
        upstream.reset()
    with running_proxy(fresh_database_url, upstreams, analyzer) as harness:
        yield harness


def test_every_request_shape_carries_its_exact_cost(fresh_proxy: Harness) -> None:
    proxy = fresh_proxy
    run_every_shape(proxy)
    book = PriceStore(proxy.sessions, "USD").book()
    records = completed(proxy)
    by_status: dict[str, int] = defaultdict(int)
    for record in records:
        by_status[record.status] += 1
        if record.upstream is None:
            assert record.cost is None and record.input_tokens is None  # refused before
            continue
        price = book.price_at(record.upstream, record.deployment_model, record.recorded_at)
        if price is None:
            assert record.requested_model == "chat-unpriced" and record.cost is None
            continue
        assert record.price_id == price.id
        assert record.cost == expected_cost(record, price), record.request_id
        assert record.currency == "USD"
    assert by_status == {"ok": 9, "stream_interrupted": 2, "rejected": 1}
    cut_short = [r for r in records if r.status == "stream_interrupted"]
    # The upstream bills what it produced; the usage chunk never came, so it is counted.
    assert all(r.usage_estimated and r.output_tokens > 0 and r.cost > 0 for r in cut_short)
    cached = [r for r in records if r.cached_input_tokens]
    assert len(cached) == 2 and all(r.requested_model == "chat-fallback" for r in cached)
    embeddings = [r for r in records if r.endpoint == "embeddings"]
    assert embeddings[0].input_tokens == 5 and embeddings[0].output_tokens == 0
    assert embeddings[0].usage_estimated is False


def test_rollups_equal_the_sums_over_the_audit_records(fresh_proxy: Harness) -> None:
    proxy = fresh_proxy
    run_every_shape(proxy)
    run_every_shape(proxy)
    expected: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0, Decimal(0)])
    for r in completed(proxy):
        key = (
            r.recorded_at.date(),
            r.app,
            r.team or "",
            r.requested_model or "",
            r.upstream or "",
            r.deployment_model or "",
            r.destination or "",
            r.currency or "",
        )
        sums = expected[key]
        sums[0] += 1
        sums[1] += r.status == "ok"
        sums[2] += r.input_tokens or 0
        sums[3] += r.cached_input_tokens or 0
        sums[4] += r.output_tokens or 0
        sums[5] += r.usage_estimated
        sums[6] += r.cost or Decimal(0)
    with proxy.sessions() as session:
        rollup = {
            (
                row.day,
                row.app,
                row.team,
                row.model,
                row.upstream,
                row.deployment_model,
                row.destination,
                row.currency,
            ): [
                row.requests,
                row.succeeded,
                row.input_tokens,
                row.cached_input_tokens,
                row.output_tokens,
                row.estimated,
                row.cost,
            ]
            for row in session.scalars(select(SpendDaily))
        }
        counters = {
            (c.scope, c.subject, c.period): (c.requests, c.tokens, c.cost)
            for c in session.scalars(select(UsageCounter))
        }
    assert rollup == dict(expected)
    total_cost = sum((v[6] for v in expected.values()), Decimal(0))
    assert total_cost.as_tuple().exponent <= -12  # twelve decimals: floats would drift
    tokens = sum(v[2] + v[4] for v in expected.values())
    requests = sum(v[0] for v in expected.values())
    for period in ("day", "month"):
        assert counters[("app", "suite", period)] == (requests, tokens, total_cost)
        assert counters[("team", "qa", period)] == (requests, tokens, total_cost)


class Clock:
    """A clock the test moves; the proxy dates requests by it."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def test_a_mid_month_price_change_applies_from_its_date_only(
    fresh_database_url: str,
    upstreams: tuple[FaultyUpstream, FaultyUpstream],
    analyzer: TextAnalyzer,
) -> None:
    clock = Clock(dt.datetime(2026, 11, 10, 12, tzinfo=dt.UTC))
    with running_proxy(
        fresh_database_url, upstreams, analyzer, clock=clock, spend={"prices_refresh_s": 0.1}
    ) as proxy:
        store = PriceStore(proxy.sessions, "USD", clock)
        finance = Principal.operator("finance")
        november = {"upstream": "alpha", "model": "demo-llama", "input": "0.10", "output": "0.40"}
        store.load(
            PriceDocument.model_validate(
                {"prices": [{**november, "effective_from": "2026-11-01"}]}
            ),
            actor=finance,
            source="november.yaml",
        )
        client = proxy.client()

        def ask() -> AuditRecord:
            raw = client.chat.completions.with_raw_response.create(
                model="chat-default", messages=ASK
            )
            return proxy.completed(raw.headers["x-request-id"])

        time.sleep(0.5)  # the proxy re-reads the price table every 0.1 s
        before = ask()
        change = {**november, "input": "0.20", "output": "0.80", "effective_from": "2026-11-15"}
        store.load(
            PriceDocument.model_validate({"prices": [change]}),
            actor=finance,
            source="change.yaml",
        )
        after_load = ask()  # loaded, but not in force until the 15th
        clock.now = dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)
        # The 15th has passed: a change dated the 12th would rewrite recorded costs.
        with pytest.raises(PriceChangeError, match="cannot start in the past"):
            store.load(
                PriceDocument.model_validate(
                    {"prices": [{**change, "effective_from": "2026-11-12"}]}
                ),
                actor=finance,
                source="late.yaml",
            )
        time.sleep(0.5)
        after = ask()
        old = before.input_tokens * Decimal("0.10") + before.output_tokens * Decimal("0.40")
        assert before.cost == after_load.cost == old / MILLION
        new = after.input_tokens * Decimal("0.20") + after.output_tokens * Decimal("0.80")
        assert after.cost == new / MILLION and after.price_id != before.price_id
        with proxy.sessions() as session:
            days = {
                row.day: row.cost
                for row in session.scalars(select(SpendDaily).where(SpendDaily.app == "suite"))
            }
        # The rollup of the 10th keeps the old price; the change shows from the 20th only.
        assert days == {
            dt.date(2026, 11, 10): before.cost + after_load.cost,
            dt.date(2026, 11, 20): after.cost,
        }


def _policy(**rules: Any) -> dict[str, Any]:
    return {
        **SUITE_POLICY,
        "name": "spend-policy",
        "defaults": {**SUITE_POLICY["defaults"], **rules},
    }


def test_budget_refuses_with_429_naming_the_budget_and_its_reset(
    fresh_database_url: str,
    upstreams: tuple[FaultyUpstream, FaultyUpstream],
    analyzer: TextAnalyzer,
) -> None:
    budgets = [
        {"name": "suite-daily", "scope": "app", "period": "daily", "tokens": 150, "alert_at": 0.5}
    ]
    with running_proxy(
        fresh_database_url, upstreams, analyzer, policy=_policy(budgets=budgets)
    ) as proxy:
        client = proxy.client()
        warned: list[str | None] = []
        refused: openai.RateLimitError | None = None
        for _ in range(20):
            try:
                raw = client.chat.completions.with_raw_response.create(
                    model="chat-default", messages=ASK
                )
            except openai.RateLimitError as error:
                refused = error
                break
            warned.append(raw.headers.get("x-tollhouse-budget-warning"))
        assert refused is not None, "the budget never refused a request"
        records = completed(proxy)
        spent = sum(r.input_tokens + r.output_tokens for r in records if r.status == "ok")
        per_request = spent // len(warned)
        # One process, one client: nothing was in flight when the budget was reached.
        assert 150 <= spent < 150 + per_request
        body = refused.body
        assert isinstance(body, dict) and body["code"] == "budget_exceeded"
        assert body["type"] == "insufficient_quota"
        message = body["message"]
        tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
        assert "Budget 'suite-daily' (daily, app 'suite') is used up" in message
        assert f"of 150 tokens used today. It resets at {tomorrow}T00:00:00Z." in message
        headers = refused.response.headers
        assert headers["x-tollhouse-budget"] == "suite-daily"
        assert 0 < int(headers["retry-after"]) <= 86_400
        # Past half the budget, answers carry a warning; and one alert per level is raised.
        assert warned[0] is None and warned[-1] is not None
        assert warned[-1].startswith("suite-daily=")
        rejected = [r for r in records if r.status == "rejected"]
        assert len(rejected) == 1 and rejected[0].http_status == 429
        assert rejected[0].error_type == "budget_exceeded"
        limits = rejected[0].decision["limits"]
        assert limits[0]["budget"] == "suite-daily" and limits[0]["tokens"] >= 150
        with proxy.sessions() as session:
            alerts = sorted(a.kind for a in session.scalars(select(AlertRecord)))
        assert alerts == ["budget.exhausted", "budget.soft"]


def test_requests_per_minute_hold_exactly_and_say_when_to_retry(
    fresh_database_url: str,
    upstreams: tuple[FaultyUpstream, FaultyUpstream],
    analyzer: TextAnalyzer,
) -> None:
    clock = Clock(dt.datetime(2026, 11, 21, 10, 0, 30, tzinfo=dt.UTC))
    limits = [{"scope": "key", "requests_per_minute": 3}]
    with running_proxy(
        fresh_database_url, upstreams, analyzer, policy=_policy(rate_limits=limits), clock=clock
    ) as proxy:
        client = proxy.client()
        for _ in range(3):
            client.chat.completions.create(model="chat-default", messages=ASK)
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model="chat-default", messages=ASK)
        body = refused.value.body
        assert isinstance(body, dict) and body["code"] == "rate_limit_exceeded"
        assert body["type"] == "requests" and "3 requests per minute" in body["message"]
        assert refused.value.response.headers["retry-after"] == "30"
        # Another key of another app is counted separately.
        proxy.client(proxy.quiet_key).chat.completions.create(model="chat-default", messages=ASK)
        clock.now += dt.timedelta(seconds=30)  # the next minute
        client.chat.completions.create(model="chat-default", messages=ASK)


def test_tokens_per_minute_per_app(
    fresh_database_url: str,
    upstreams: tuple[FaultyUpstream, FaultyUpstream],
    analyzer: TextAnalyzer,
) -> None:
    limits = [{"scope": "app", "tokens_per_minute": 40}]
    with running_proxy(
        fresh_database_url, upstreams, analyzer, policy=_policy(rate_limits=limits)
    ) as proxy:
        client = proxy.client()
        answered = 0
        with pytest.raises(openai.RateLimitError) as refused:
            for _ in itertools.repeat(None, 20):
                client.chat.completions.create(model="chat-default", messages=ASK)
                answered += 1
        body = refused.value.body
        assert isinstance(body, dict) and body["type"] == "tokens"
        assert "40 tokens per minute" in body["message"] and 1 <= answered < 20


def test_limits_fail_closed_without_the_database(
    fresh_database_url: str,
    upstreams: tuple[FaultyUpstream, FaultyUpstream],
    analyzer: TextAnalyzer,
) -> None:
    budgets = [{"name": "b", "scope": "key", "period": "monthly", "cost": "5"}]
    with running_proxy(
        fresh_database_url, upstreams, analyzer, policy=_policy(budgets=budgets)
    ) as proxy:
        proxy.client().chat.completions.create(model="chat-default", messages=ASK)
        with proxy.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE usage_counters")
        received = len(proxy.alpha.received)
        with pytest.raises(openai.InternalServerError) as refused:
            proxy.client().chat.completions.create(model="chat-default", messages=ASK)
        assert refused.value.status_code == 503
        body = refused.value.body
        # Counting fails (limits_unavailable); recording that refusal fails too, since the
        # writer adds to the same counters, and the client learns the record failed.
        assert isinstance(body, dict)
        assert body["code"] in ("limits_unavailable", "audit_unavailable")
        assert len(proxy.alpha.received) == received  # nothing went upstream


def _tokenizer_file(directory: Path) -> tuple[Path, Any]:
    """A real (small) Hugging Face tokenizer, trained here: word pieces of the demo text."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = ["This is the Tollhouse demo model, not a real LLM. You said: count the apples"]
    tokenizer.train_from_iterator(
        corpus * 20, trainers.BpeTrainer(vocab_size=60, special_tokens=["[UNK]"])
    )
    path = directory / "tokenizer.json"
    tokenizer.save(str(path))
    return path, tokenizer


def test_missing_usage_is_counted_with_the_upstreams_tokenizer(
    fresh_database_url: str,
    upstreams: tuple[FaultyUpstream, FaultyUpstream],
    analyzer: TextAnalyzer,
    tmp_path: Path,
) -> None:
    path, tokenizer = _tokenizer_file(tmp_path)
    alpha, beta = upstreams
    common = {"destination": "internal", "timeout_s": 1.0, "kind": "openai_compatible"}
    config = {
        "upstreams": [
            {"name": "alpha", "base_url": alpha.url, "tokenizer_file": str(path), **common},
            {"name": "beta", "base_url": beta.url, **common},
        ]
    }
    with running_proxy(fresh_database_url, upstreams, analyzer, **config) as proxy:
        for stream in (False, True):
            proxy.alpha.inject(Fault("no_usage"))
            raw = proxy.client().chat.completions.with_raw_response.create(
                model="chat-default", messages=ASK, stream=stream
            )
            answer = (
                "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
                if stream
                else raw.parse().choices[0].message.content
            )
            record = proxy.completed(raw.headers["x-request-id"])
            assert record.usage_estimated is True
            prompt = ASK[0]["content"]
            assert record.input_tokens == len(tokenizer.encode(prompt).ids)
            counted = len(tokenizer.encode(answer).ids)
            # A stream is counted chunk by chunk: a word split over two chunks may count
            # as two pieces, never fewer than the whole text.
            assert counted <= record.output_tokens <= counted + 8 * stream
            assert record.cost is not None
