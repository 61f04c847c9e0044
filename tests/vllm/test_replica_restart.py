"""A vLLM replica that dies under Tollhouse and comes back.

With its only chat replica killed (SIGKILL to the server, its engine and worker), Tollhouse
answers 502 after its retries and records every attempt; once the replica is restarted on
the same port, the same proxy serves again without a restart of its own. The fixture's
kill/restart is what the routing tests build on.
"""

from __future__ import annotations

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.proxy.conftest import Harness
from tests.vllm.conftest import CHAT_ALIAS
from tests.vllm.servers import VllmFleet

ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": "are you there"}]


def test_killed_replica_fails_cleanly_and_recovers_after_restart(
    tollhouse: Harness, vllm_fleet: VllmFleet
) -> None:
    replica = vllm_fleet.chat["chat-a"]
    client = tollhouse.client(timeout=30)
    client.chat.completions.create(model=CHAT_ALIAS, messages=ASK, max_tokens=2)  # pooled

    assert replica.process is not None
    first_pid = replica.process.pid
    try:
        replica.kill()
        assert replica.process.returncode == -9 and not replica.healthy()
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model=CHAT_ALIAS, messages=ASK, max_tokens=2)
        assert caught.value.status_code == 502 and "cannot connect" in caught.value.message
        assert caught.value.request_id
        record = tollhouse.completed(caught.value.request_id, wait_s=10.0)
        assert record.status == "upstream_error" and record.http_status == 502
        attempts = record.attempts or []
        retries = tollhouse.settings.retry.attempts_per_deployment
        assert [a["upstream"] for a in attempts] == ["vllm-chat-a"] * retries
        assert all(a["http_status"] is None for a in attempts)  # nothing answered
    finally:
        replica.restart()  # the rest of the session needs it, whatever happened here
    assert replica.process.pid != first_pid and replica.healthy()
    reply = client.chat.completions.create(model=CHAT_ALIAS, messages=ASK, max_tokens=2)
    assert reply.choices[0].finish_reason in ("length", "stop")
