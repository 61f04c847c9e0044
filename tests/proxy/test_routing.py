"""Deployment order and retry delays."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from governance.config.schema import ModelConfig, RetryConfig
from governance.errors import UpstreamStatusError
from proxy.routing import Attempt, Router, Target


class NamedAdapter:
    """A stand-in adapter; the router only reads its name."""

    destination = "internal"

    def __init__(self, name: str) -> None:
        self.name = name


def router(seed: int = 1, **retry: float) -> tuple[Router, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    adapters = {n: NamedAdapter(n) for n in ("a", "b", "c")}
    return Router(adapters, RetryConfig(**retry), random.Random(seed), sleep), slept  # type: ignore[arg-type]


MODEL = ModelConfig.model_validate(
    {
        "name": "m",
        "deployments": [
            {"upstream": "a", "model": "x", "weight": 3},
            {"upstream": "b", "model": "x", "weight": 1},
            {"upstream": "c", "model": "x", "weight": 0},
        ],
    }
)


def test_weights_decide_the_first_choice_and_zero_is_fallback_only() -> None:
    r, _ = router()
    plans = [[t.adapter.name for t in r.plan(MODEL)] for _ in range(4000)]
    firsts = Counter(p[0] for p in plans)
    assert 0.70 < firsts["a"] / 4000 < 0.80  # weight 3 of 4
    assert all(p[-1] == "c" for p in plans)


def test_retry_after_and_backoff() -> None:
    r, slept = router(attempts_per_deployment=3, backoff_initial_s=0.1, retry_after_max_s=2)
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
    result, target = asyncio.run(r.run(r.plan(MODEL)[:1], call, attempts))
    assert result == target.adapter.name
    assert slept[0] == 1.5 and 0.1 <= slept[1] <= 0.2
    assert [a.http_status for a in attempts] == [429, 500, 200]


def test_non_retryable_error_stops_at_once() -> None:
    r, slept = router()

    async def call(target: Target) -> str:
        raise UpstreamStatusError("bad request", retryable=False, upstream_status=400)

    attempts: list[Attempt] = []
    with pytest.raises(UpstreamStatusError):
        asyncio.run(r.run(r.plan(MODEL), call, attempts))
    assert len(attempts) == 1 and slept == []
