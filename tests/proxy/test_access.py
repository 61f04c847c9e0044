"""Keys, permissions and the error shapes the official client relies on."""

from __future__ import annotations

import time

import openai
import pytest

from tests.proxy.conftest import Harness

ASK = [{"role": "user", "content": "hello"}]


def test_missing_and_wrong_keys_are_401(proxy: Harness) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        proxy.client(key="th-00000000-not-a-real-key").chat.completions.create(
            model="chat-default", messages=ASK
        )
    assert caught.value.code == "invalid_api_key"
    assert caught.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    client = proxy.client(default_headers={"Authorization": ""})
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="chat-default", messages=ASK)
    assert proxy.alpha.received == []


def test_revoked_key_stops_working(proxy: Harness) -> None:
    created = proxy.keys.create("suite", "qa", "to be revoked")
    client = proxy.client(key=created.secret)
    client.chat.completions.create(model="chat-default", messages=ASK)
    proxy.keys.revoke(created.principal.prefix)
    time.sleep(proxy.settings.auth_cache_ttl_s + 0.1)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="chat-default", messages=ASK)


def test_unknown_model_is_404(proxy: Harness) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        proxy.client().chat.completions.create(model="gpt-nonexistent", messages=ASK)
    assert caught.value.code == "model_not_found"
    records = proxy.records(caught.value.request_id or "")
    assert [(r.kind, r.status) for r in records] == [
        ("admitted", "admitted"),
        ("completed", "rejected"),
    ]
    assert proxy.alpha.received == []


def test_app_may_only_use_its_models(proxy: Harness) -> None:
    quiet = proxy.client(key=proxy.quiet_key)
    quiet.chat.completions.create(model="chat-default", messages=ASK)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        quiet.chat.completions.create(model="chat-fallback", messages=ASK)
    assert caught.value.code == "model_not_permitted"
    assert [m.id for m in quiet.models.list()] == ["chat-default"]
    assert [m.id for m in proxy.client().models.list()] == [
        "chat-default",
        "chat-fallback",
        "embed-default",
        "chat-unpriced",
    ]


def test_invalid_requests_are_400_with_the_parameter(proxy: Harness) -> None:
    client = proxy.client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="chat-default", messages=[])
    assert caught.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="chat-default", messages=[{"role": "wizard", "content": "hi"}]
        )  # type: ignore[list-item]
    assert caught.value.param is not None and caught.value.param.startswith("messages.0")
    with pytest.raises(openai.BadRequestError):
        client.post(
            "/embeddings",
            body={"model": "embed-default", "input": "x", "stream": True},
            cast_to=object,
        )
    with pytest.raises(openai.BadRequestError) as caught:
        client.post(
            "/chat/completions",
            body=None,
            cast_to=object,
            options={"headers": {"Content-Type": "application/json"}},
        )
    assert proxy.alpha.received == []
