"""Keys, roles, permissions and the error shapes the official client relies on."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid

import openai
import pytest

from governance.access import Role
from governance.access.principals import PrincipalService
from governance.errors import AuthenticationError
from governance.keys import KeyService
from proxy.auth import Authenticator
from tests.proxy.conftest import OPERATOR, Harness

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
    created = proxy.keys.create_for_app("suite", "qa", "to be revoked", actor=OPERATOR)
    client = proxy.client(key=created.secret)
    client.chat.completions.create(model="chat-default", messages=ASK)
    proxy.keys.revoke(created.principal.prefix, actor=OPERATOR)
    time.sleep(proxy.settings.auth_cache_ttl_s + 0.1)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="chat-default", messages=ASK)


def test_a_key_without_the_app_role_gets_403(proxy: Harness) -> None:
    """An auditor's key is a valid key, but not for the proxy routes: 403, no record."""
    name = f"auditor-{uuid.uuid4().hex[:8]}"
    PrincipalService(proxy.sessions).create(name, [Role.AUDITOR], actor=OPERATOR)
    key = proxy.keys.create(name, actor=OPERATOR).secret
    client = proxy.client(key=key)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="chat-default", messages=ASK)
    assert caught.value.code == "role_not_permitted"
    assert caught.value.body["type"] == "permission_error"  # type: ignore[index]
    assert name in caught.value.message and "app" in caught.value.message
    assert caught.value.response.headers.get("x-request-id") is None  # nothing admitted
    with pytest.raises(openai.PermissionDeniedError):
        client.models.list()
    assert proxy.alpha.received == []


def test_disabled_principal_and_rotated_key(proxy: Harness) -> None:
    app = f"rotating-{uuid.uuid4().hex[:8]}"
    old = proxy.keys.create_for_app(app, "qa", actor=OPERATOR)
    proxy.client(key=old.secret).chat.completions.create(model="chat-default", messages=ASK)
    new = proxy.keys.rotate(old.principal.prefix, dt.timedelta(0), actor=OPERATOR)
    assert new.principal.principal_id == old.principal.principal_id
    time.sleep(proxy.settings.auth_cache_ttl_s + 0.1)
    with pytest.raises(openai.AuthenticationError):  # no overlap: the old key is done
        proxy.client(key=old.secret).chat.completions.create(model="chat-default", messages=ASK)
    answer = proxy.client(key=new.secret).chat.completions.with_raw_response.create(
        model="chat-default", messages=ASK
    )
    records = proxy.records(answer.headers["x-request-id"])
    assert {(r.app, r.team, r.key_id) for r in records} == {(app, "qa", new.principal.key_id)}

    PrincipalService(proxy.sessions).disable(app, actor=OPERATOR)
    time.sleep(proxy.settings.auth_cache_ttl_s + 0.1)
    with pytest.raises(openai.AuthenticationError):
        proxy.client(key=new.secret).chat.completions.create(model="chat-default", messages=ASK)


def test_the_key_cache_never_outlives_a_key(proxy: Harness) -> None:
    """With a long cache TTL, an expiring key is still refused the moment it expires."""
    start = dt.datetime.now(dt.UTC)
    ticks = {"s": 0.0}

    def wall() -> dt.datetime:
        return start + dt.timedelta(seconds=ticks["s"])

    keys = KeyService(proxy.sessions, clock=wall)
    created = keys.create_for_app(
        "suite", "qa", expires_at=start + dt.timedelta(seconds=10), actor=OPERATOR
    )
    authenticator = Authenticator(keys, ttl_s=60, clock=lambda: ticks["s"], wall_clock=wall)
    header = f"Bearer {created.secret}"
    principal = asyncio.run(authenticator.authenticate(header))
    assert principal == created.principal and principal.app == "suite"
    ticks["s"] = 9.0  # cached, still valid
    assert asyncio.run(authenticator.authenticate(header)) == created.principal
    ticks["s"] = 10.0  # expired: the cached entry ended with the key
    with pytest.raises(AuthenticationError):
        asyncio.run(authenticator.authenticate(header))


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
