"""Choosing deployments for a request, with retries and fallback.

`Router.plan` orders a model alias's permitted deployments (`proxy.routing.plan`);
`Router.run` calls them in that order. Each deployment gets ``attempts_per_deployment``
tries with exponential backoff, but only for errors an upstream marks retryable (connect
failures, 429, 5xx), only before any byte of an answer has reached the client, and not
once the upstream has been cooled down. Every attempt is logged in an `Attempt` list
that ends up in the audit record; every outcome updates the `ReplicaBoard`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from governance.config.schema import Destination, ModelConfig, RetryConfig
from governance.errors import NoPermittedUpstreamError, UpstreamError
from proxy.routing.plan import RoutePlan
from proxy.routing.replicas import Lease, ReplicaBoard
from proxy.routing.target import Attempt, Target
from proxy.upstream.adapter import UpstreamAdapter

T = TypeVar("T")


@dataclass(slots=True)
class Routed(Generic[T]):
    """The answer of the attempt that worked, and its place in the upstream's count of
    requests in flight: release the lease when the answer has been read (a stream: when
    it ends)."""

    result: T
    target: Target
    lease: Lease


class Router:
    def __init__(
        self,
        adapters: Mapping[str, UpstreamAdapter],
        retry: RetryConfig,
        board: ReplicaBoard,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._adapters = adapters
        self._retry = retry
        self._board = board
        self._rng = rng or random.Random()
        self._sleep = sleep

    @property
    def board(self) -> ReplicaBoard:
        return self._board

    def plan(self, model: ModelConfig, permitted: Collection[Destination]) -> RoutePlan:
        """The deployments of ``model`` whose destination is ``permitted``; `run` orders them."""
        return RoutePlan.build(model, permitted, self._adapters)

    async def run(
        self,
        plan: RoutePlan,
        call: Callable[[Target], Awaitable[T]],
        attempts: list[Attempt],
    ) -> Routed[T]:
        """Order the plan's targets by the replicas' state now, then call them in order
        until one succeeds; append each try to ``attempts``."""
        board = self._board
        last_error: UpstreamError | None = None
        for target in plan.order(board, self._rng):
            name = target.adapter.name
            for tries in range(self._retry.attempts_per_deployment):
                started = time.perf_counter()
                lease = board.acquire(name)
                try:
                    result = await call(target)
                except UpstreamError as error:
                    lease.release(error)
                    attempts.append(
                        _attempt(target, error.code or "error", error.upstream_status, started)
                    )
                    last_error = error
                    if not error.retryable:
                        raise
                    delay = self._delay(tries, error)
                    last_try = tries + 1 >= self._retry.attempts_per_deployment
                    if delay is None or last_try or _resting(board, name):
                        break  # on to the next deployment
                    await self._sleep(delay)
                    continue
                except asyncio.CancelledError:
                    lease.release()
                    attempts.append(_attempt(target, "cancelled", None, started))
                    raise
                except BaseException:
                    lease.release()
                    raise
                board.succeeded(name)
                ok = _attempt(target, "ok", 200, started)
                # Replies and streams carry the watched headers; other results none.
                headers = getattr(result, "watched_headers", None)
                attempts.append(dataclasses.replace(ok, headers=headers) if headers else ok)
                return Routed(result, target, lease)
        assert last_error is not None, "a plan has at least one target"
        if plan.forbidden:
            raise NoPermittedUpstreamError(
                f"Every deployment this request may use failed ({last_error.message}); the "
                f"policy forbids sending it to {' or '.join(plan.forbidden)} deployments, "
                "so there is no fallback. Try again later.",
                upstream_status=last_error.upstream_status,
            ) from last_error
        raise last_error

    def _delay(self, tries: int, error: UpstreamError) -> float | None:
        """Seconds to wait before retrying the same deployment; None moves on at once."""
        if error.retry_after_s is not None:
            if error.retry_after_s > self._retry.retry_after_max_s:
                return None
            return float(error.retry_after_s)
        backoff: float = min(self._retry.backoff_max_s, self._retry.backoff_initial_s * 2**tries)
        return backoff * (0.5 + self._rng.random() / 2)


def _resting(board: ReplicaBoard, name: str) -> bool:
    """Whether ``name`` was just cooled down: retrying it now would only wait."""
    return board.status(board.state(name), board.now()) != "ready"


def _attempt(target: Target, outcome: str, status: int | None, started: float) -> Attempt:
    return Attempt(
        upstream=target.adapter.name,
        model=target.deployment.model,
        outcome=outcome,
        http_status=status,
        duration_ms=(time.perf_counter() - started) * 1000,
    )
