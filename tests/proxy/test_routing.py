"""Deployment order, retries, cooldown and load estimates: the router and its board, with
a hand-driven clock and stand-in adapters (the end-to-end routing tests are in
test_load_routing.py)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest

from governance.config.routing import RoutingConfig
from governance.config.schema import ModelConfig, RetryConfig
from governance.errors import (
    NoPermittedUpstreamError,
    UpstreamConnectError,
    UpstreamRefusedError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from proxy.routing import Attempt, ReplicaBoard, RoutePlan, Router, Target
from proxy.routing.probe import parse_vllm_metrics


class NamedAdapter:
    """A stand-in adapter; the router only reads its name and destination."""

    def __init__(self, name: str, destination: str = "internal") -> None:
        self.name = name
        self.destination = destination


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def router(
    seed: int = 1,
    routing: dict[str, Any] | None = None,
    external: tuple[str, ...] = (),
    **retry: float,
) -> tuple[Router, list[float], Clock]:
    slept: list[float] = []
    clock = Clock()

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    names = ("a", "b", "c", "x")
    adapters = {n: NamedAdapter(n, "external" if n in external else "internal") for n in names}
    board = ReplicaBoard(adapters, RoutingConfig(**(routing or {})), clock)
    rng = random.Random(seed)
    r = Router(adapters, RetryConfig(**retry), board, rng, sleep)  # type: ignore[arg-type]
    return r, slept, clock


def model(*deployments: tuple[str, int]) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "name": "m",
            "deployments": [{"upstream": u, "model": "x", "weight": w} for u, w in deployments],
        }
    )


MODEL = model(("a", 3), ("b", 1), ("c", 0))
DRAWS = random.Random(11)  # the weighted draws of `order`
BOTH = ("internal", "external")


def plan(r: Router, m: ModelConfig = MODEL, permitted: tuple[str, ...] = BOTH) -> RoutePlan:
    """A plan ordered as `Router.run` orders it, just before its first attempt."""
    route = r.plan(m, permitted)  # type: ignore[arg-type]
    route.order(r.board, random.Random(7))
    return route


def order(r: Router, m: ModelConfig = MODEL, permitted: tuple[str, ...] = BOTH) -> list[str]:
    route = r.plan(m, permitted)  # type: ignore[arg-type]
    return [t.adapter.name for t in route.order(r.board, DRAWS)]


def test_weights_decide_the_first_choice_among_idle_replicas_and_zero_is_fallback_only() -> None:
    r, _, _ = router()
    plans = [order(r) for _ in range(4000)]
    firsts = Counter(p[0] for p in plans)
    assert 0.70 < firsts["a"] / 4000 < 0.80  # weight 3 of 4
    assert all(p[-1] == "c" for p in plans)


def test_least_outstanding_requests_come_first_per_unit_of_weight() -> None:
    r, _, _ = router()
    board = r.board
    leases = [board.acquire("a") for _ in range(4)]  # a: 4 in flight, weight 3 -> 1.33
    assert all(order(r)[:2] == ["b", "a"] for _ in range(50))  # b idle, weight 1 -> 0
    leases += [board.acquire("b") for _ in range(2)]  # b: 2 -> 2.0 > 1.33
    assert all(order(r)[:2] == ["a", "b"] for _ in range(50))
    route = plan(r)
    assert route.reason == "least load per weight (1.33333) of 2 ready"
    assert [c["load"] for c in route.trace()["candidates"]] == [4.0, 2.0, 0.0]
    for lease in leases:
        lease.release()
        lease.release()  # idempotent
    assert [board.state(n).outstanding for n in "ab"] == [0, 0]


def test_scraped_load_counts_with_what_this_process_started_since() -> None:
    r, _, clock = router(routing={"load_stale_after_s": 5})
    board = r.board
    board.record_load("a", running=3, waiting=1, kv_cache=0.5)  # a: 3 + 2*1 = 5
    assert board.estimate(board.state("a"), clock.now) == 5.0
    lease = board.acquire("a")  # one more since the scrape
    assert board.estimate(board.state("a"), clock.now) == 6.0
    lease.release()
    other = [board.acquire("b") for _ in range(3)]  # b: 3 of its own, no scrape
    two = model(("a", 1), ("b", 1))
    assert order(r, two) == ["b", "a"]
    clock.now += 6  # the scrape is stale: only this process's count (0) is left
    assert board.estimate(board.state("a"), clock.now) == 0.0
    assert order(r, two) == ["a", "b"]
    # A scrape never counts less than this process's own requests in flight.
    board.record_load("b", running=0, waiting=0, kv_cache=None)
    assert board.estimate(board.state("b"), clock.now) == 3.0
    for lease in other:
        lease.release()
    route = plan(r, two)
    assert route.reason == "weighted draw among 2 ready deployments with equal load"
    assert [c["load"] for c in route.trace()["candidates"]] == [0.0, 0.0]


def test_forbidden_destinations_are_never_candidates_and_say_why() -> None:
    r, _, _ = router(external=("x",))
    route = r.plan(model(("a", 1), ("x", 1)), ("internal",))
    excluded = [
        {
            "upstream": "x",
            "model": "x",
            "excluded": "policy forbids external destinations for this request",
        }
    ]
    # Admitted: the candidates and what the policy ruled out, not yet ranked.
    assert route.trace() == {
        "candidates": [{"upstream": "a", "model": "x"}],
        "excluded": excluded,
    }
    assert route.forbidden == ("external",)
    targets = route.order(r.board, random.Random(1))
    assert [t.adapter.name for t in targets] == ["a"]
    assert route.trace(targets[0]) == {
        "reason": "the only ready weighted deployment",
        "candidates": [{"upstream": "a", "model": "x", "load": 0.0, "rank": 1}],
        "excluded": excluded,
        "chosen": "a",
    }


def test_an_internal_only_request_gets_503_when_every_internal_deployment_fails() -> None:
    r, _, _ = router(external=("x",), attempts_per_deployment=1)
    m = model(("a", 1), ("b", 0), ("x", 0))
    called: list[str] = []

    async def call(target: Target) -> str:
        called.append(target.adapter.name)
        raise UpstreamStatusError("down", retryable=True, upstream_status=503)

    with pytest.raises(NoPermittedUpstreamError) as raised:
        asyncio.run(r.run(r.plan(m, ("internal",)), call, []))
    assert called == ["a", "b"]  # never x
    assert raised.value.status == 503 and raised.value.code == "no_permitted_upstream"
    assert "forbids sending it to external" in raised.value.message
    # Without a forbidden destination the last upstream error stands.
    with pytest.raises(UpstreamStatusError):
        asyncio.run(r.run(r.plan(m, BOTH), call, []))  # type: ignore[arg-type]


def test_retry_after_and_backoff() -> None:
    r, slept, _ = router(attempts_per_deployment=3, backoff_initial_s=0.1, retry_after_max_s=2)
    failures = iter(
        [
            UpstreamStatusError("busy", retryable=True, retry_after_s=1.5, upstream_status=429),
            UpstreamStatusError("oops", retryable=True, upstream_status=500),
        ]
    )

    async def call(target: Target) -> str:
        error = next(failures, None)
        if error:
            raise error
        return target.adapter.name

    attempts: list[Attempt] = []
    plan = r.plan(model(("a", 1)), BOTH)  # type: ignore[arg-type]
    routed = asyncio.run(r.run(plan, call, attempts))
    assert routed.result == routed.target.adapter.name == "a"
    assert slept[0] == 1.5 and 0.1 <= slept[1] <= 0.2
    assert [a.http_status for a in attempts] == [429, 500, 200]
    assert r.board.state("a").outstanding == 1  # until the caller has read the answer
    routed.lease.release()
    assert r.board.state("a").outstanding == 0


def test_non_retryable_error_stops_at_once() -> None:
    r, slept, _ = router()

    async def call(target: Target) -> str:
        raise UpstreamStatusError("bad request", retryable=False, upstream_status=400)

    attempts: list[Attempt] = []
    with pytest.raises(UpstreamStatusError):
        asyncio.run(r.run(r.plan(MODEL, BOTH), call, attempts))  # type: ignore[arg-type]
    assert len(attempts) == 1 and slept == []
    assert r.board.state(attempts[0].upstream).failures == 0  # says nothing about the upstream


def test_a_refused_connection_cools_down_at_once_and_is_not_retried() -> None:
    r, slept, clock = router(routing={"cooldown_s": 10}, attempts_per_deployment=3)
    m = model(("a", 1), ("b", 0))
    calls: list[str] = []

    async def call(target: Target) -> str:
        calls.append(target.adapter.name)
        if target.adapter.name == "a":
            raise UpstreamRefusedError("upstream a: cannot connect")
        return "ok"

    routed = asyncio.run(r.run(r.plan(m, BOTH), call, []))  # type: ignore[arg-type]
    routed.lease.release()
    assert calls == ["a", "b"] and slept == []  # no retries against a dead replica
    board = r.board
    assert board.status(board.state("a"), clock.now) == "cooling"
    route = plan(r, m)
    assert [t.adapter.name for t in route.targets] == ["b", "a"]  # tried last, not dropped
    assert route.trace()["candidates"][1]["status"] == "cooling"
    assert route.reason == "no weighted deployment is ready: fallback"
    clock.now += 10.01
    assert order(r, m) == ["a", "b"]


def test_repeated_failures_cool_down_and_each_cooldown_in_a_row_doubles() -> None:
    r, _, clock = router(
        routing={"cooldown_after_failures": 2, "cooldown_s": 4, "cooldown_max_s": 10}
    )
    board = r.board
    state = board.state("a")
    error = UpstreamStatusError("oops", retryable=True, upstream_status=500)
    board.failed("a", error)
    assert board.status(state, clock.now) == "ready"
    board.failed("a", UpstreamTimeoutError("slow"))  # timeouts count too
    assert state.cooled_until == clock.now + 4
    clock.now += 5
    board.failed("a", error)
    board.failed("a", error)
    assert state.cooled_until == clock.now + 8
    clock.now += 9
    board.failed("a", error)
    board.failed("a", error)
    assert state.cooled_until == clock.now + 10  # capped
    board.succeeded("a")
    assert (state.failures, state.cooldowns, state.cooled_until) == (0, 0, 0.0)
    board.failed("a", UpstreamConnectError("reset mid-answer"))  # lost, not refused: counts
    assert board.status(state, clock.now) == "ready"


def test_retry_after_lengthens_a_cooldown_and_zero_failures_disables_it() -> None:
    r, _, clock = router(routing={"cooldown_after_failures": 1, "cooldown_s": 2})
    busy = UpstreamStatusError("busy", retryable=True, retry_after_s=30, upstream_status=429)
    r.board.failed("a", busy)
    assert r.board.state("a").cooled_until == clock.now + 30
    off, _, _ = router(routing={"cooldown_after_failures": 0})
    off.board.failed("a", UpstreamRefusedError("down"))
    assert off.board.state("a").cooled_until == 0.0


def test_an_unhealthy_replica_goes_last_until_its_check_passes() -> None:
    r, _, _ = router()
    two = model(("a", 1), ("b", 1))
    r.board.record_health("a", False, "HTTP 503")
    plans = [order(r, two) for _ in range(20)]
    assert all(p == ["b", "a"] for p in plans)
    assert plan(r, two).trace()["candidates"][1]["status"] == "unhealthy"
    r.board.record_health("a", True)
    assert {order(r, two)[0] for _ in range(50)} == {"a", "b"}
    snapshot = {row["upstream"]: row for row in r.board.snapshot()}
    assert snapshot["a"]["status"] == "ready" and snapshot["a"]["healthy"] is True


VLLM_PAGE = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="tiny"} 3.0
vllm:num_requests_running{engine="1",model_name="tiny"} 1.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="tiny"} 2.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="tiny"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="tiny"} 0.5
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="tiny"} 1234.0
"""


def test_vllm_metrics_are_summed_over_engines() -> None:
    load = parse_vllm_metrics(VLLM_PAGE)
    assert (load.running, load.waiting, load.kv_cache) == (4.0, 2.0, 0.5)
    old = "vllm:num_requests_running 2\nvllm:gpu_cache_usage_perc 0.75\n"
    assert parse_vllm_metrics(old).kv_cache == 0.75
    with pytest.raises(ValueError, match="no vllm:num_requests_running"):
        parse_vllm_metrics("# an empty page\nprocess_cpu_seconds_total 1.0\n")
