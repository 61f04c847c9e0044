"""Routing end to end: two internal replicas that serve vLLM's /health and /metrics pages
and an external provider behind a byte-counting tap, all on loopback, through the real
proxy and the official openai client.

The ``suite`` app's policy allows internal destinations only; ``quiet`` may use both.
Whatever these tests do to the replicas (load, failures, kills), the tap in front of the
external provider must never see a byte of a ``suite`` request: checked after every test.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from governance.access import Role
from governance.access.principals import PrincipalService
from governance.pii import TextAnalyzer
from tests.proxy.conftest import OPERATOR, Harness, running_proxy
from tests.support.pg import wait_until
from tests.upstream.faulty import Fault, FaultyUpstream
from tests.upstream.replica import Replica
from tests.upstream.tap import ByteTap

MODEL = "chat-replicas"
PROBE_INTERVAL_S = 0.05
COOLDOWN_S = 1.0

ROUTING_POLICY: dict[str, Any] = {
    "name": "routing-policy",
    "defaults": {
        "audit": {"content": "none"},
        "content": {"secrets": "off"},
        "destinations": ["internal"],
    },
    "overrides": [
        {
            "name": "quiet-anywhere",
            "match": {"apps": ["quiet"]},
            "rules": {"destinations": ["internal", "external"]},
        }
    ],
}


class Fleet:
    def __init__(self, proxy: Harness, a: Replica, b: Replica, tap: ByteTap, sre: str):
        self.proxy = proxy
        self.a = a
        self.b = b
        self.tap = tap
        self.sre_key = sre

    def chat(self, key: str | None = None, stream: bool = False) -> tuple[str, str]:
        """(request id, answering upstream) of one request."""
        client = self.proxy.client(key)
        messages: Any = [{"role": "user", "content": "route me"}]
        if stream:
            with client.chat.completions.with_streaming_response.create(
                model=MODEL, messages=messages, stream=True
            ) as response:
                request_id = response.headers["x-request-id"]
                for _ in response.iter_lines():
                    pass
        else:
            raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
            request_id = raw.headers["x-request-id"]
        record = self.proxy.completed(request_id)
        assert record.upstream is not None
        return request_id, record.upstream

    def routing(self, request_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The routing decision of the request's admitted and completed records."""
        admitted, completed = self.proxy.records(request_id)
        assert admitted.decision is not None and completed.decision is not None
        return admitted.decision["routing"], completed.decision["routing"]

    def upstreams(self) -> dict[str, dict[str, Any]]:
        request = urllib.request.Request(
            self.proxy.url.removesuffix("/v1") + "/admin/upstreams",
            headers={"Authorization": f"Bearer {self.sre_key}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return {row["upstream"]: row for row in json.load(response)}

    def scraped(self, replica: Replica, rounds: int = 2) -> None:
        """Wait until the proxy has scraped ``replica`` ``rounds`` more times."""
        seen = replica.scrapes
        wait_until(lambda: replica.scrapes >= seen + rounds, 5)


@pytest.fixture(scope="module")
def fleet(database_url: str, analyzer: TextAnalyzer) -> Iterator[Fleet]:
    a = Replica("rep-a", models=("demo-llama",)).start()
    b = Replica("rep-b", models=("demo-llama",)).start()
    provider = FaultyUpstream("provider", models=("gpt-test",)).start()
    assert provider.server is not None
    tap = ByteTap(provider.server.port).start()
    common = {"kind": "openai_compatible", "timeout_s": 2.0, "connect_timeout_s": 1.0}

    def replica(r: Replica) -> dict[str, Any]:
        probe = {
            "health_url": f"{r.root}/health",
            "metrics_url": f"{r.root}/metrics",
            "interval_s": PROBE_INTERVAL_S,
        }
        return {"name": r.name, "base_url": r.url, "destination": "internal", "probe": probe}

    upstreams = [
        {**replica(a), **common},
        {**replica(b), **common},
        {"name": "provider", "base_url": tap.url, "destination": "external", **common},
    ]
    deployments = [
        {"upstream": "rep-a", "model": "demo-llama", "weight": 1},
        {"upstream": "rep-b", "model": "demo-llama", "weight": 1},
        {"upstream": "provider", "model": "gpt-test", "weight": 0},
    ]
    with running_proxy(
        database_url,
        (a, b),
        analyzer,
        policy=ROUTING_POLICY,
        upstreams=upstreams,
        models=[{"name": MODEL, "deployments": deployments}],
        routing={"cooldown_after_failures": 2, "cooldown_s": COOLDOWN_S},
        retry={"attempts_per_deployment": 2, "backoff_initial_s": 0.01, "backoff_max_s": 0.02},
        spend={},
    ) as proxy:
        name = f"sre-{uuid.uuid4().hex[:8]}"
        PrincipalService(proxy.sessions).create(name, [Role.SRE], actor=OPERATOR)
        sre = proxy.keys.create(name, actor=OPERATOR).secret
        yield Fleet(proxy, a, b, tap, sre)
    tap.stop()
    for server in (a, b, provider):
        assert server.server is not None
        server.server.stop()


@pytest.fixture
def routed(fleet: Fleet) -> Iterator[Fleet]:
    """The fleet idle, healthy and out of cooldown; afterwards, nothing reached the tap
    unless the test sent ``quiet`` traffic on purpose (it resets the tap itself)."""
    for replica in (fleet.a, fleet.b):
        replica.reset()
        replica.set_load(0)
        replica.health_status = 200
    fleet.tap.reset()
    fleet.scraped(fleet.a)
    fleet.scraped(fleet.b)
    wait_until(
        lambda: all(row["status"] == "ready" for row in fleet.upstreams().values()),
        COOLDOWN_S * 4 + 2,
    )
    yield fleet
    assert (fleet.tap.connections, fleet.tap.bytes_in) == (0, 0), "bytes reached the provider"


def test_a_replica_reporting_load_gets_no_requests_while_the_other_is_idle(routed: Fleet) -> None:
    routed.a.set_load(running=6, waiting=2, kv_cache=0.8)
    routed.scraped(routed.a)
    chosen = [routed.chat()[1] for _ in range(8)]
    assert chosen == ["rep-b"] * 8
    request_id, _ = routed.chat()
    admitted, completed = routed.routing(request_id)
    assert admitted == {
        "candidates": [
            {"upstream": "rep-a", "model": "demo-llama"},
            {"upstream": "rep-b", "model": "demo-llama"},
        ],
        "excluded": [
            {
                "upstream": "provider",
                "model": "gpt-test",
                "excluded": "policy forbids external destinations for this request",
            }
        ],
    }
    assert completed["chosen"] == "rep-b"
    assert completed["reason"] == "least load per weight (0) of 2 ready"
    ranked = {c["upstream"]: c for c in completed["candidates"]}
    assert ranked["rep-b"]["rank"] == 1 and ranked["rep-a"]["rank"] == 2
    assert ranked["rep-a"]["load"] == 10.0  # 6 running + 2 queued counted twice
    assert ranked["rep-a"]["kv_cache"] == 0.8
    # The load moves: so do the requests.
    routed.a.set_load(0)
    routed.b.set_load(running=3)
    routed.scraped(routed.a)
    routed.scraped(routed.b)
    assert [routed.chat(stream=True)[1] for _ in range(4)] == ["rep-a"] * 4


def test_concurrent_requests_spread_by_outstanding_count(routed: Fleet) -> None:
    """No load reported: this process's own requests in flight decide. Eight slow requests
    sent at once end up four and four (a random choice would be that even 27 % of the
    time)."""
    for replica in (routed.a, routed.b):
        replica.inject(Fault("slow_first_byte", delay_s=0.6, times=8))

    async def burst() -> list[str]:
        client = routed.proxy.async_client()

        async def one() -> str:
            raw = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=[{"role": "user", "content": "slow"}]
            )
            return raw.headers["x-request-id"]

        try:
            return list(await asyncio.gather(*(one() for _ in range(8))))
        finally:
            await client.close()

    request_ids = asyncio.run(burst())
    upstreams = [routed.proxy.completed(r).upstream for r in request_ids]
    assert sorted(upstreams) == ["rep-a"] * 4 + ["rep-b"] * 4


def test_an_unhealthy_replica_is_skipped_until_its_check_passes(routed: Fleet) -> None:
    routed.a.health_status = 503
    wait_until(lambda: routed.upstreams()["rep-a"]["status"] == "unhealthy", 5)
    state = routed.upstreams()["rep-a"]
    assert state["healthy"] is False and state["health_detail"] == "HTTP 503"
    assert [routed.chat()[1] for _ in range(6)] == ["rep-b"] * 6
    routed.a.health_status = 200
    wait_until(lambda: routed.upstreams()["rep-a"]["status"] == "ready", 5)
    assert "rep-a" in {routed.chat()[1] for _ in range(20)}


def test_a_killed_replica_cools_down_and_comes_back(routed: Fleet) -> None:
    routed.a.stop()
    try:
        requests = [routed.chat() for _ in range(10)]
        assert [upstream for _, upstream in requests] == ["rep-b"] * 10
        rows = routed.upstreams()
        assert rows["rep-a"]["status"] in ("cooling", "unhealthy")
        # A request that tried a saw its connection refused once (no retry against a dead
        # replica), then b answered; once a cooled down, requests went to b first.
        outcomes = [
            [(a["upstream"], a["outcome"]) for a in routed.proxy.completed(r).attempts or []]
            for r, _ in requests
        ]
        refused = [("rep-a", "upstream_unreachable"), ("rep-b", "ok")]
        assert all(o in (refused, [("rep-b", "ok")]) for o in outcomes), outcomes
        assert outcomes[-1] == [("rep-b", "ok")]
    finally:
        routed.a.start()
    wait_until(lambda: routed.upstreams()["rep-a"]["status"] == "ready", COOLDOWN_S * 4 + 2)
    assert "rep-a" in {routed.chat()[1] for _ in range(20)}


def test_internal_only_requests_get_503_when_every_replica_is_down(routed: Fleet) -> None:
    routed.a.stop()
    routed.b.stop()
    try:
        for stream in (False, True):
            with pytest.raises(openai.APIStatusError) as caught:
                routed.chat(stream=stream)
            error = caught.value
            assert error.status_code == 503
            assert isinstance(error.body, dict) and error.body["code"] == "no_permitted_upstream"
            assert "forbids sending it to external" in error.body["message"]
            assert error.request_id is not None
            record = routed.proxy.completed(error.request_id)
            assert record.status == "upstream_error" and record.http_status == 503
            assert {a["upstream"] for a in record.attempts or []} <= {"rep-a", "rep-b"}
            assert record.decision is not None
            assert "chosen" not in record.decision["routing"]
        assert (routed.tap.connections, routed.tap.bytes_in) == (0, 0)
        # The same outage for an app the policy lets out: the provider answers. This also
        # proves the tap counts what passes through it.
        _, upstream = routed.chat(key=routed.proxy.quiet_key)
        assert upstream == "provider"
        assert routed.tap.connections >= 1 and routed.tap.bytes_in > 0
        routed.tap.reset()
    finally:
        routed.a.start()
        routed.b.start()


def test_idle_replicas_are_drawn_by_weight(routed: Fleet) -> None:
    request_id, upstream = routed.chat()
    _, completed = routed.routing(request_id)
    assert completed["chosen"] == upstream
    assert [c["rank"] for c in completed["candidates"]] == [1, 2]
    assert completed["reason"] == "weighted draw among 2 ready deployments with equal load"
