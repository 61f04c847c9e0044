"""Routing across two real vLLM replicas: load read from vLLM's own /metrics, and a replica
killed (SIGKILL) while traffic flows.

A second chat replica, ``chat-b``, joins the session's ``chat-a`` for this module. The proxy
probes both (``/health`` and ``/metrics`` every 0.2 s) and cools a replica down after a
refused connection.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from openai.types.chat import ChatCompletionMessageParam

from governance.access import Role
from governance.access.principals import PrincipalService
from governance.db import AuditRecord
from governance.pii import TextAnalyzer
from tests.proxy.conftest import OPERATOR, Harness
from tests.support.otlp import OtlpHttpReceiver
from tests.support.pg import wait_until
from tests.vllm.conftest import CHAT_ALIAS, vllm_config, vllm_proxy
from tests.vllm.servers import CHAT_MODEL, VllmFleet, VllmServer

ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": "which replica"}]


class Routed:
    def __init__(self, proxy: Harness, fleet: VllmFleet, sre_key: str) -> None:
        self.proxy = proxy
        self.fleet = fleet
        self.sre_key = sre_key

    def upstreams(self) -> dict[str, dict[str, Any]]:
        """``GET /admin/upstreams``: the proxy's view of each upstream."""
        request = urllib.request.Request(
            self.proxy.url.removesuffix("/v1") + "/admin/upstreams",
            headers={"Authorization": f"Bearer {self.sre_key}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return {row["upstream"]: row for row in json.load(response)}

    def chat(self) -> tuple[str, str]:
        """(request id, answering upstream) of one short request through the proxy."""
        raw = self.proxy.client(timeout=60).chat.completions.with_raw_response.create(
            model=CHAT_ALIAS, messages=ASK, max_tokens=2
        )
        request_id = raw.headers["x-request-id"]
        record = self.proxy.completed(request_id, wait_s=5)
        assert record.upstream is not None
        return request_id, record.upstream


@pytest.fixture(scope="module")
def routed(
    vllm_fleet: VllmFleet,
    otlp: OtlpHttpReceiver,
    analyzer: TextAnalyzer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Routed]:
    if "chat-b" not in vllm_fleet.chat:
        vllm_fleet.add_chat_replica("chat-b")
    directory = tmp_path_factory.mktemp("routing")
    upstreams = vllm_config(vllm_fleet, directory)["upstreams"]
    for upstream, server in zip(upstreams, vllm_fleet.servers(), strict=True):
        if server is not vllm_fleet.embed:
            upstream["probe"] = {
                "health_url": f"{server.url}/health",
                "metrics_url": f"{server.url}/metrics",
                "interval_s": 0.2,
            }
    with vllm_proxy(
        vllm_fleet,
        otlp,
        analyzer,
        directory,
        upstreams=upstreams,
        routing={"cooldown_after_failures": 2, "cooldown_s": 30},
    ) as proxy:
        name = f"sre-{uuid.uuid4().hex[:8]}"
        PrincipalService(proxy.sessions).create(name, [Role.SRE], actor=OPERATOR)
        sre_key = proxy.keys.create(name, actor=OPERATOR).secret
        yield Routed(proxy, vllm_fleet, sre_key)


class Busy:
    """Keeps a replica generating: ``streams`` long completions sent straight to it (not
    through Tollhouse), each replaced as it ends, until `stop`. Their lengths differ, so
    they do not all end (and the replica's gauge drop) at the same moment."""

    def __init__(self, server: VllmServer, streams: int) -> None:
        self._server = server
        self._done = threading.Event()
        self._pool = ThreadPoolExecutor(streams)
        self._futures = [self._pool.submit(self._loop, 120 + 20 * i) for i in range(streams)]

    def _loop(self, max_tokens: int) -> None:
        client = self._server.client(timeout_s=120)
        while not self._done.is_set():
            client.completions.create(
                model=CHAT_MODEL,
                prompt="keep generating",
                max_tokens=max_tokens,
                temperature=0,
                extra_body={"ignore_eos": True},
            )

    def stop(self) -> None:
        self._done.set()
        for future in self._futures:
            future.result(timeout=180)  # a failed request fails the test
        self._pool.shutdown()


def test_requests_avoid_the_replica_vllm_reports_busy(routed: Routed) -> None:
    busy = Busy(routed.fleet.chat["chat-a"], streams=6)
    try:
        # The proxy sees chat-a's own gauge, not requests it sent itself (it sent none).
        wait_until(
            lambda: routed.upstreams()["vllm-chat-a"].get("load", {}).get("running", 0) >= 3,
            60,
        )
        state = routed.upstreams()["vllm-chat-a"]
        assert state["outstanding"] == 0 and state["status"] == "ready"
        requests = [routed.chat() for _ in range(6)]
    finally:
        busy.stop()
    assert [upstream for _, upstream in requests] == ["vllm-chat-b"] * 6
    completed = routed.proxy.completed(requests[0][0])
    assert completed.decision is not None
    routing = completed.decision["routing"]
    assert routing["chosen"] == "vllm-chat-b"
    assert routing["reason"].startswith("least load per weight")
    loads = {c["upstream"]: c["load"] for c in routing["candidates"]}
    assert loads["vllm-chat-a"] > loads["vllm-chat-b"]  # the reason it went to b
    # Idle again: both replicas take requests.
    wait_until(lambda: routed.upstreams()["vllm-chat-a"].get("load", {}).get("running", 1) == 0, 60)
    chosen = {routed.chat()[1] for _ in range(16)}
    assert chosen == {"vllm-chat-a", "vllm-chat-b"}


def test_a_replica_killed_mid_run_costs_no_request(routed: Routed) -> None:
    """Four clients keep sending; chat-b is killed with SIGKILL halfway. Every request still
    succeeds: one in flight at b when it died fails over (nothing had reached the client),
    and once b is cooled down, requests go to a first."""
    victim = routed.fleet.chat["chat-b"]
    outcomes: list[tuple[float, str]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def client_loop() -> None:
        while not stop.is_set():
            try:
                _, upstream = routed.chat()
            except BaseException as exc:  # collected: the assertion below shows them
                errors.append(exc)
                return
            outcomes.append((time.monotonic(), upstream))

    threads = [threading.Thread(target=client_loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: {u for _, u in outcomes} == {"vllm-chat-a", "vllm-chat-b"}, 60)
        killed_at = time.monotonic()
        victim.kill()
        wait_until(lambda: sum(t > killed_at + 1 for t, _ in outcomes) >= 12, 120)
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
    assert errors == []
    after = [u for t, u in outcomes if t > killed_at + 1]
    assert set(after) == {"vllm-chat-a"}
    state = routed.upstreams()["vllm-chat-b"]
    assert state["status"] in ("cooling", "unhealthy")
    assert state["healthy"] is False  # the probe found /health gone too
    # The requests that met the dead replica: refused (or cut off) there, answered by a.
    failed_over = [
        record
        for record in _completed_since(routed.proxy, killed_at)
        if record.attempts and record.attempts[0]["upstream"] == "vllm-chat-b"
    ]
    for record in failed_over:
        assert record.status == "ok" and record.upstream == "vllm-chat-a"
        assert (record.attempts or [{}])[-1].get("outcome") == "ok"


def _completed_since(proxy: Harness, since_monotonic: float) -> list[AuditRecord]:
    """Completed records written after a monotonic time (converted to wall-clock)."""
    wall = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=time.monotonic() - since_monotonic)
    return [
        record
        for record in proxy.all_records()
        if record.kind == "completed" and _utc(record.recorded_at) >= wall
    ]


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)  # SQLite: naive UTC
