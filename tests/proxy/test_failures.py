"""Each upstream failure ends with the error a client expects and a completed record that
says what happened, including which deployments were tried."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

import openai
import pytest
from sqlalchemy import select

from governance.db import AuditRecord
from tests.proxy.conftest import Harness
from tests.support.pg import wait_until
from tests.upstream.faulty import Fault

ASK = [{"role": "user", "content": "Is the service up?"}]


def request_id_of(error: openai.APIStatusError) -> str:
    assert error.request_id, "every Tollhouse answer names its request id"
    return error.request_id


def chat_raw(proxy: Harness, model: str = "chat-default", **kwargs: object) -> tuple[str, object]:
    raw = proxy.client().chat.completions.with_raw_response.create(
        model=model, messages=ASK, **kwargs
    )
    return raw.headers["x-request-id"], raw.parse()


def outcomes(record: object) -> list[tuple[str, str]]:
    return [(a["upstream"], a["outcome"]) for a in record.attempts]  # type: ignore[attr-defined]


def test_5xx_is_retried_on_the_same_deployment(proxy: Harness) -> None:
    proxy.alpha.inject(Fault("status", status=503))
    request_id, _ = chat_raw(proxy)
    record = proxy.completed(request_id)
    assert record.status == "ok" and record.upstream == "alpha"
    assert outcomes(record) == [("alpha", "injected_503"), ("alpha", "ok")]
    assert record.attempts[0]["http_status"] == 503


def test_fallback_to_the_next_deployment(proxy: Harness) -> None:
    proxy.alpha.inject(Fault("status", status=500, times=2))
    request_id, answer = chat_raw(proxy, model="chat-fallback")
    assert answer.system_fingerprint == "fp_beta"  # type: ignore[attr-defined]
    record = proxy.completed(request_id)
    assert record.status == "ok" and record.upstream == "beta"
    assert outcomes(record) == [
        ("alpha", "injected_500"),
        ("alpha", "injected_500"),
        ("beta", "ok"),
    ]


def test_exhausted_retries_give_a_5xx_error(proxy: Harness) -> None:
    proxy.alpha.inject(Fault("status", status=502, times=5))
    with pytest.raises(openai.InternalServerError) as caught:
        proxy.client().chat.completions.create(model="chat-default", messages=ASK)
    assert caught.value.status_code == 502
    record = proxy.completed(request_id_of(caught.value))
    assert record.status == "upstream_error" and record.http_status == 502
    assert len(record.attempts) == 2
    assert "injected failure 502" in record.error_message


def test_429_honours_retry_after(proxy: Harness) -> None:
    proxy.alpha.inject(Fault("status", status=429, retry_after="0.3"))
    started = time.monotonic()
    request_id, _ = chat_raw(proxy)
    assert time.monotonic() - started >= 0.3
    assert outcomes(proxy.completed(request_id)) == [("alpha", "injected_429"), ("alpha", "ok")]


def test_persistent_429_reaches_the_client_as_rate_limit(proxy: Harness) -> None:
    proxy.alpha.inject(Fault("status", status=429, retry_after="30", times=5))
    with pytest.raises(openai.RateLimitError) as caught:
        proxy.client().chat.completions.create(model="chat-default", messages=ASK)
    record = proxy.completed(request_id_of(caught.value))
    assert record.http_status == 429
    assert len(record.attempts) == 1  # Retry-After beyond the cap: no point waiting


def test_upstream_4xx_is_not_retried(proxy: Harness) -> None:
    proxy.alpha.inject(Fault("status", status=400))
    with pytest.raises(openai.BadRequestError) as caught:
        proxy.client().chat.completions.create(model="chat-fallback", messages=ASK)
    assert "injected failure 400" in caught.value.message
    record = proxy.completed(request_id_of(caught.value))
    assert outcomes(record) == [("alpha", "injected_400")]
    assert proxy.beta.received == []


def test_slow_first_byte_times_out(proxy: Harness) -> None:
    proxy.alpha.inject(Fault("slow_first_byte", delay_s=1.5))
    with pytest.raises(openai.APIStatusError) as caught:
        proxy.client().chat.completions.create(model="chat-default", messages=ASK)
    assert caught.value.status_code == 504
    record = proxy.completed(request_id_of(caught.value))
    assert record.status == "timeout" and record.error_type == "upstream_timeout"


def test_connection_reset_is_retried(proxy: Harness) -> None:
    proxy.alpha.inject(Fault("reset"))
    request_id, _ = chat_raw(proxy)
    assert outcomes(proxy.completed(request_id)) == [
        ("alpha", "upstream_unreachable"),
        ("alpha", "ok"),
    ]


def test_unreachable_upstream_falls_back(proxy: Harness) -> None:
    proxy.alpha.inject(Fault("reset", times=2))
    request_id, _ = chat_raw(proxy, model="chat-fallback")
    record = proxy.completed(request_id)
    assert record.upstream == "beta"
    assert [o for _, o in outcomes(record)] == [
        "upstream_unreachable",
        "upstream_unreachable",
        "ok",
    ]


def test_malformed_json_is_a_bad_gateway(proxy: Harness) -> None:
    proxy.alpha.inject(Fault("malformed_json"))
    with pytest.raises(openai.InternalServerError) as caught:
        proxy.client().chat.completions.create(model="chat-default", messages=ASK)
    assert caught.value.status_code == 502
    record = proxy.completed(request_id_of(caught.value))
    assert record.status == "upstream_error" and record.error_type == "upstream_bad_response"


def test_stream_fails_before_first_byte_then_recovers(proxy: Harness) -> None:
    proxy.alpha.inject(Fault("status", status=503))
    with proxy.client().chat.completions.with_streaming_response.create(
        model="chat-default", messages=ASK, stream=True
    ) as response:
        request_id = response.headers["x-request-id"]
        chunks = list(response.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    record = proxy.completed(request_id)
    assert record.status == "ok" and len(record.attempts) == 2


@pytest.mark.parametrize(
    ("fault", "status", "message"),
    [
        (Fault("drop_mid_stream", after_events=3), "stream_interrupted", "connection lost"),
        (Fault("malformed_sse", after_events=2), "stream_interrupted", "not valid JSON"),
        (Fault("in_stream_error", after_events=2), "stream_interrupted", "injected model crash"),
    ],
)
def test_stream_broken_after_first_byte(
    proxy: Harness, fault: Fault, status: str, message: str
) -> None:
    proxy.alpha.inject(fault)
    received = []
    with proxy.client().chat.completions.with_streaming_response.create(
        model="chat-default", messages=ASK, stream=True
    ) as response:
        request_id = response.headers["x-request-id"]
        with pytest.raises(openai.APIError) as caught:
            for chunk in response.parse():
                received.append(chunk)
    assert message in caught.value.message
    assert len(received) == fault.after_events  # everything before the break arrived
    record = proxy.completed(request_id)
    assert record.status == status and message in record.error_message
    assert record.ttft_ms is not None and record.output_tokens is not None


def test_stream_error_event_is_followed_by_done(proxy: Harness) -> None:
    proxy.alpha.inject(Fault("drop_mid_stream", after_events=2))
    request = urllib.request.Request(
        f"{proxy.url}/chat/completions",
        data=json.dumps({"model": "chat-default", "messages": ASK, "stream": True}).encode(),
        headers={"Authorization": f"Bearer {proxy.suite_key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    events = [e for e in text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert events[-2].startswith('data: {"error":')
    assert len(events) == 4


def test_client_disconnect_cancels_the_upstream_stream(proxy: Harness) -> None:
    proxy.alpha.inject(Fault("endless"))
    with proxy.client().chat.completions.with_streaming_response.create(
        model="chat-default", messages=ASK, stream=True
    ) as response:
        request_id = response.headers["x-request-id"]
        stream = response.parse()
        for _, _chunk in zip(range(5), stream, strict=False):
            pass
    # Leaving the block closed the connection: the upstream must see its reader go.
    assert wait_until(lambda: proxy.alpha.abandoned_streams == 1, 5)
    record = proxy.completed(request_id, wait_s=5)
    assert record.status == "client_disconnected"


def test_client_disconnect_cancels_a_unary_call(proxy: Harness) -> None:
    proxy.alpha.inject(Fault("slow_first_byte", delay_s=0.8))
    user = f"leaver-{uuid.uuid4().hex[:8]}"  # finds this request's records and no others
    with pytest.raises(openai.APITimeoutError):
        proxy.client(timeout=0.2).chat.completions.create(
            model="chat-default", messages=ASK, user=user
        )

    def statuses() -> list[tuple[str, str]]:
        with proxy.sessions() as session:
            rows = session.execute(
                select(AuditRecord.kind, AuditRecord.status)
                .where(AuditRecord.end_user == user)
                .order_by(AuditRecord.id)
            ).all()
        return [(kind, status) for kind, status in rows]

    assert wait_until(lambda: len(statuses()) == 2, 5)
    assert statuses() == [("admitted", "admitted"), ("completed", "client_disconnected")]
