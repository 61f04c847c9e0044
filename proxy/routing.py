"""Choosing deployments for a request, with retries and fallback.

A model alias lists deployments. The first one is drawn by weight; the others follow as
fallbacks (drawn by weight, then weight-0 "fallback only" deployments in file order).
Each deployment gets ``attempts_per_deployment`` tries with exponential backoff, but
only for errors an upstream marks retryable (connect failures, 429, 5xx) and only
before any byte of an answer has reached the client. Every attempt is logged in an
`Attempt` list that ends up in the audit record.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from governance.config.schema import DeploymentConfig, ModelConfig, RetryConfig
from governance.errors import UpstreamError
from proxy.upstream.adapter import UpstreamAdapter

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Target:
    """A concrete place to send one attempt."""

    adapter: UpstreamAdapter
    deployment: DeploymentConfig


@dataclass(slots=True)
class Attempt:
    upstream: str
    model: str
    outcome: str  # "ok" or an error code
    http_status: int | None
    duration_ms: float
    # The upstream's watched response headers (``fingerprint_headers``) of a success.
    headers: dict[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        attempt: dict[str, Any] = {
            "upstream": self.upstream,
            "model": self.model,
            "outcome": self.outcome,
            "http_status": self.http_status,
            "duration_ms": round(self.duration_ms, 3),
        }
        if self.headers:
            attempt["headers"] = self.headers
        return attempt


class Router:
    def __init__(
        self,
        adapters: Mapping[str, UpstreamAdapter],
        retry: RetryConfig,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._adapters = adapters
        self._retry = retry
        self._rng = rng or random.Random()
        self._sleep = sleep

    def plan(self, model: ModelConfig) -> list[Target]:
        """Deployments in the order they will be tried."""
        weighted = [d for d in model.deployments if d.weight > 0]
        # Weighted sampling without replacement (Efraimidis-Spirakis keys).
        weighted.sort(key=lambda d: self._rng.random() ** (1.0 / d.weight), reverse=True)
        ordered = weighted + [d for d in model.deployments if d.weight == 0]
        return [Target(self._adapters[d.upstream], d) for d in ordered]

    async def run(
        self,
        targets: list[Target],
        call: Callable[[Target], Awaitable[T]],
        attempts: list[Attempt],
    ) -> tuple[T, Target]:
        """Call targets in order until one succeeds; append each try to ``attempts``."""
        last_error: UpstreamError | None = None
        for target in targets:
            for tries in range(self._retry.attempts_per_deployment):
                started = time.perf_counter()
                try:
                    result = await call(target)
                except UpstreamError as error:
                    attempts.append(
                        _attempt(target, error.code or "error", error.upstream_status, started)
                    )
                    last_error = error
                    if not error.retryable:
                        raise
                    delay = self._delay(tries, error)
                    if delay is None or tries + 1 >= self._retry.attempts_per_deployment:
                        break  # on to the next deployment
                    await self._sleep(delay)
                    continue
                except asyncio.CancelledError:
                    attempts.append(_attempt(target, "cancelled", None, started))
                    raise
                ok = _attempt(target, "ok", 200, started)
                # Replies and streams carry the watched headers; other results none.
                headers = getattr(result, "watched_headers", None)
                attempts.append(dataclasses.replace(ok, headers=headers) if headers else ok)
                return result, target
        assert last_error is not None, "a model has at least one deployment"
        raise last_error

    def _delay(self, tries: int, error: UpstreamError) -> float | None:
        """Seconds to wait before retrying the same deployment; None moves on at once."""
        if error.retry_after_s is not None:
            if error.retry_after_s > self._retry.retry_after_max_s:
                return None
            return float(error.retry_after_s)
        backoff: float = min(self._retry.backoff_max_s, self._retry.backoff_initial_s * 2**tries)
        return backoff * (0.5 + self._rng.random() / 2)


def _attempt(target: Target, outcome: str, status: int | None, started: float) -> Attempt:
    return Attempt(
        upstream=target.adapter.name,
        model=target.deployment.model,
        outcome=outcome,
        http_status=status,
        duration_ms=(time.perf_counter() - started) * 1000,
    )
