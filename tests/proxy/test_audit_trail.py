"""Every request has exactly one admitted and one completed record, with exact costs."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from sqlalchemy import select

from governance.access import Principal
from governance.audit.reader import RecordFilter
from governance.db import AuditRecord
from governance.pii import TextAnalyzer
from governance.spend.prices import PriceStore
from tests.proxy.conftest import Harness, running_proxy
from tests.upstream.faulty import Fault, FaultyUpstream
from tollhouse.demo.model_server import count_tokens

ASK = [{"role": "user", "content": "Please count the words in this sentence for me."}]


def run_mixed_traffic(proxy: Harness) -> list[str]:
    """A mix of shapes and outcomes; returns the request ids."""
    client = proxy.client()
    ids = []
    for model in ("chat-default", "chat-fallback", "chat-unpriced"):
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=ASK, user="u-42"
        )
        ids.append(raw.headers["x-request-id"])
    with client.chat.completions.with_streaming_response.create(
        model="chat-default", messages=ASK, stream=True
    ) as streamed:
        ids.append(streamed.headers["x-request-id"])
        list(streamed.parse())
    raw = client.embeddings.with_raw_response.create(model="embed-default", input=["a b c", "d"])
    ids.append(raw.headers["x-request-id"])
    raw = client.completions.with_raw_response.create(model="chat-default", prompt="Hello")
    ids.append(raw.headers["x-request-id"])
    proxy.alpha.inject(Fault("status", status=500, times=2))
    try:
        client.chat.completions.create(model="chat-default", messages=ASK)
    except openai.InternalServerError as error:
        ids.append(error.request_id or "")
    try:
        client.chat.completions.create(model="no-such-model", messages=ASK)
    except openai.NotFoundError as error:
        ids.append(error.request_id or "")
    return ids


def test_one_admitted_and_one_completed_per_request(proxy: Harness) -> None:
    ids = run_mixed_traffic(proxy)
    assert len(set(ids)) == 8 and all(ids)
    with proxy.sessions() as session:
        rows = session.execute(
            select(AuditRecord.request_id, AuditRecord.kind).where(AuditRecord.request_id.in_(ids))
        ).all()
    assert Counter(rows) == Counter({(i, k): 1 for i in ids for k in ("admitted", "completed")})


def test_admitted_record_precedes_and_describes_the_request(proxy: Harness) -> None:
    raw = proxy.client().chat.completions.with_raw_response.create(
        model="chat-default", messages=ASK, user="end-user-7"
    )
    admitted, completed = proxy.records(raw.headers["x-request-id"])
    assert admitted.kind == "admitted" and admitted.id < completed.id
    assert admitted.recorded_at <= completed.recorded_at
    for record in (admitted, completed):
        assert (record.app, record.team, record.end_user) == ("suite", "qa", "end-user-7")
        assert record.endpoint == "chat.completions" and record.requested_model == "chat-default"
    request_content = proxy.content(admitted.request_id)[0]
    assert request_content["status"] == "present"
    assert request_content["request"]["messages"] == ASK  # app "suite" keeps full content
    assert admitted.content_retention == "full" and admitted.content_key_id is not None
    assert completed.response_model == "demo-llama"
    assert completed.system_fingerprint == "fp_alpha"
    assert completed.response_id.startswith("chatcmpl-")
    assert (completed.upstream, completed.deployment_model, completed.destination) == (
        "alpha",
        "demo-llama",
        "internal",
    )
    assert completed.finish_reasons == ["stop"]
    assert completed.latency_ms > 0


def test_content_is_not_kept_for_apps_that_say_none(proxy: Harness) -> None:
    raw = proxy.client(key=proxy.quiet_key).chat.completions.with_raw_response.create(
        model="chat-default", messages=ASK
    )
    admitted, completed = proxy.records(raw.headers["x-request-id"])
    assert admitted.content_retention == "none"
    assert [c["status"] for c in proxy.content(admitted.request_id)] == ["none", "none"]
    assert admitted.content_digest is None and completed.content_digest is None
    # Usage is kept even when content is not: the upstream's own count, not an estimate.
    assert completed.input_tokens == count_tokens(ASK[0]["content"])
    assert completed.usage_estimated is False


def test_streamed_content_and_usage_are_recorded(proxy: Harness) -> None:
    with proxy.client().chat.completions.with_streaming_response.create(
        model="chat-default", messages=ASK, stream=True
    ) as streamed:
        request_id = streamed.headers["x-request-id"]
        text = "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices)
    record = proxy.completed(request_id)
    assert proxy.content(request_id)[1]["response"][0]["content"] == text
    assert record.usage_estimated is False and record.output_tokens > 0
    assert record.ttft_ms is not None and record.ttft_ms <= record.latency_ms


def test_missing_usage_is_estimated_and_marked(proxy: Harness) -> None:
    for stream in (False, True):
        proxy.alpha.inject(Fault("no_usage"))
        client = proxy.client()
        if stream:
            with client.chat.completions.with_streaming_response.create(
                model="chat-default", messages=ASK, stream=True
            ) as streamed:
                request_id = streamed.headers["x-request-id"]
                list(streamed.parse())
        else:
            raw = client.chat.completions.with_raw_response.create(
                model="chat-default", messages=ASK
            )
            request_id = raw.headers["x-request-id"]
        record = proxy.completed(request_id)
        assert record.usage_estimated is True
        assert record.input_tokens > 0 and record.output_tokens > 0
        assert (
            record.cost
            == (record.input_tokens * Decimal("0.10") + record.output_tokens * Decimal("0.40"))
            / 1_000_000
        )


def test_exported_costs_equal_usage_times_price(proxy: Harness, tmp_path: Path) -> None:
    run_mixed_traffic(proxy)
    book = PriceStore(proxy.sessions, "USD").book()
    checked = 0
    out = tmp_path / "export.jsonl"
    proxy.reader().export(Principal.operator("test"), RecordFilter(), out)
    by_id = {r.id: r for r in proxy.all_records()}
    upstreams = {u.name for u in proxy.settings.upstreams}
    for line in map(json.loads, out.read_text().splitlines()):
        record = by_id[line["id"]]
        if record.app not in ("suite", "quiet") or record.upstream not in upstreams:
            continue  # written by other tests sharing this database, not by this proxy
        if record.kind != "completed" or record.status != "ok":
            continue
        price = book.price_at(record.upstream, record.deployment_model, record.recorded_at)
        if price is None:
            assert record.requested_model == "chat-unpriced"
            assert line["cost"] is None
            continue
        expected = (
            (record.input_tokens - (record.cached_input_tokens or 0)) * price.input
            + (record.cached_input_tokens or 0) * (price.cached_input or price.input)
            + record.output_tokens * price.output
        ) / Decimal(1_000_000)
        assert line["price_id"] == price.id
        assert Decimal(line["cost"]) == expected, line  # to the last decimal, via the export
        assert line["currency"] == "USD"
        checked += 1
    assert checked >= 5


def test_fallback_price_with_many_decimals_is_exact(proxy: Harness) -> None:
    raw = proxy.client().chat.completions.with_raw_response.create(
        model="chat-fallback", messages=ASK
    )
    record = proxy.completed(raw.headers["x-request-id"])
    expected = (
        record.input_tokens * Decimal("3.000001") + record.output_tokens * Decimal("15.5")
    ) / (Decimal(10) ** 6)
    assert record.cost == expected
    assert expected.as_tuple().exponent < -9  # the case a float column would get wrong


def test_old_price_applies_before_its_successor(proxy: Harness) -> None:
    book = PriceStore(proxy.sessions, "USD").book()
    old = book.price_at("alpha", "demo-llama", dt.datetime(2025, 6, 1, tzinfo=dt.UTC))
    new = book.price_at("alpha", "demo-llama", dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    assert old is not None and new is not None
    assert (old.cost(1000, 1000), new.cost(1000, 1000)) == (Decimal("0.0015"), Decimal("0.0005"))


def test_every_record_names_the_policy_version(proxy: Harness) -> None:
    client = proxy.client()
    ok = client.chat.completions.with_raw_response.create(
        model="chat-default", messages=[{"role": "user", "content": "hi"}]
    )
    ids = [ok.headers["x-request-id"]]
    for bad_model in ("no-such-model", "chat-fallback"):
        key = proxy.quiet_key if bad_model == "chat-fallback" else None
        try:
            proxy.client(key).chat.completions.create(
                model=bad_model, messages=[{"role": "user", "content": "hi"}]
            )
        except (openai.NotFoundError, openai.PermissionDeniedError) as error:
            ids.append(error.response.headers["x-request-id"])
    assert len(ids) == 3
    for request_id in ids:
        records = proxy.records(request_id)
        assert len(records) == 2
        for record in records:
            assert record.policy_name == "suite-policy"
            assert isinstance(record.policy_version, int) and record.policy_version >= 1
    refused = proxy.records(ids[2])[0]
    assert refused.decision is not None and refused.decision["rules"] == ["models"]
    assert refused.decision["overrides"] == ["quiet-narrow"]


def test_full_content_without_a_master_key_is_refused(
    database_url: str,
    upstreams: tuple[FaultyUpstream, FaultyUpstream],
    analyzer: TextAnalyzer,
) -> None:
    """Fail closed: the policy asks to keep full content, which must be encrypted."""
    with running_proxy(database_url, upstreams, analyzer, audit={"master_key_file": None}) as bare:
        bare.alpha.reset()
        with pytest.raises(openai.InternalServerError) as caught:
            bare.client().chat.completions.create(model="chat-default", messages=ASK)
        assert caught.value.status_code == 503
        assert caught.value.code == "content_encryption_unavailable"
        assert bare.alpha.received == []
        request_id = caught.value.response.headers["x-request-id"]
        admitted, completed = bare.records(request_id)
        assert admitted.content_digest is None and completed.status == "audit_unavailable"
        # an app whose policy keeps no content is unaffected
        bare.client(key=bare.quiet_key).chat.completions.create(model="chat-default", messages=ASK)
