"""What the proxy knows about each upstream right now: its requests in flight, its
recent failures (cooldown), its health check and the load its own metrics report.

One `ReplicaBoard` per process, keyed by upstream name (a vLLM replica is an upstream).
Everything here runs on the event loop; nothing blocks and nothing does I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from governance.config.routing import RoutingConfig
from governance.errors import UpstreamError, UpstreamRefusedError, UpstreamTimeoutError

Status = Literal["ready", "cooling", "unhealthy"]


@dataclass(frozen=True, slots=True)
class Load:
    """One scrape of a replica's own metrics (vLLM's Prometheus gauges)."""

    running: float
    waiting: float
    kv_cache: float | None  # fraction of the KV cache in use, 0..1
    at: float  # monotonic time of the scrape
    outstanding_then: int  # this process's requests in flight when it was taken


class ReplicaState:
    __slots__ = (
        "cooldowns",
        "cooled_until",
        "failures",
        "health_detail",
        "healthy",
        "load",
        "name",
        "outstanding",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.outstanding = 0  # this process's requests in flight there
        self.failures = 0  # consecutive retryable failures
        self.cooldowns = 0  # cooldowns in a row (each doubles the next)
        self.cooled_until = 0.0
        self.healthy: bool | None = None  # None: no health check configured or run yet
        self.health_detail: str | None = None
        self.load: Load | None = None


class Lease:
    """One request in flight at an upstream; `release` ends it (once)."""

    __slots__ = ("_board", "_open", "_state")

    def __init__(self, board: ReplicaBoard, state: ReplicaState) -> None:
        self._board = board
        self._state = state
        self._open = True
        state.outstanding += 1

    def release(self, error: UpstreamError | None = None) -> None:
        """End the request; ``error`` (a failure late in a stream) counts against the upstream."""
        if not self._open:
            return
        self._open = False
        self._state.outstanding -= 1
        if error is not None:
            self._board.failed(self._state.name, error)


class ReplicaBoard:
    def __init__(
        self,
        names: Iterable[str],
        config: RoutingConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._states = {name: ReplicaState(name) for name in names}
        self._config = config
        self._clock = clock

    def state(self, name: str) -> ReplicaState:
        return self._states[name]

    def acquire(self, name: str) -> Lease:
        return Lease(self, self._states[name])

    # -- outcomes ------------------------------------------------------------------------
    def succeeded(self, name: str) -> None:
        state = self._states[name]
        state.failures = 0
        state.cooldowns = 0
        state.cooled_until = 0.0

    def failed(self, name: str, error: UpstreamError) -> None:
        """Count a failure; enough of them (or a refused connection) cool the upstream down.

        Only failures that say something about the upstream count: retryable ones (5xx,
        429, lost connections) and timeouts, not a 400 for a bad request."""
        config = self._config
        counts = error.retryable or isinstance(error, UpstreamTimeoutError)
        if not counts or config.cooldown_after_failures == 0:
            return
        state = self._states[name]
        state.failures += 1
        refused = isinstance(error, UpstreamRefusedError)
        if refused or state.failures >= config.cooldown_after_failures:
            seconds = min(config.cooldown_max_s, config.cooldown_s * 2**state.cooldowns)
            if error.retry_after_s is not None:
                seconds = max(seconds, min(config.cooldown_max_s, error.retry_after_s))
            state.cooled_until = self._clock() + seconds
            state.cooldowns += 1
            state.failures = 0

    # -- probes ----------------------------------------------------------------------------
    def record_health(self, name: str, ok: bool, detail: str | None = None) -> None:
        state = self._states[name]
        state.healthy = ok
        state.health_detail = detail

    def record_load(
        self, name: str, running: float, waiting: float, kv_cache: float | None
    ) -> None:
        state = self._states[name]
        state.load = Load(running, waiting, kv_cache, self._clock(), state.outstanding)

    def forget_load(self, name: str) -> None:
        self._states[name].load = None

    # -- reading -----------------------------------------------------------------------------
    def status(self, state: ReplicaState, now: float) -> Status:
        if state.healthy is False:
            return "unhealthy"
        if state.cooled_until > now:
            return "cooling"
        return "ready"

    def fresh_load(self, state: ReplicaState, now: float) -> Load | None:
        load = state.load
        if load is None or now - load.at > self._config.load_stale_after_s:
            return None
        return load

    def estimate(self, state: ReplicaState, now: float) -> float:
        """Requests the replica is busy with: its own count at the last scrape (running +
        queued) moved by what this process started or finished since, never less than this
        process's own; without a fresh scrape, this process's own. Queued requests count
        twice: a queue means the replica is past what it can batch."""
        own = state.outstanding
        load = self.fresh_load(state, now)
        if load is None:
            return float(own)
        scraped = load.running + 2 * load.waiting + (own - load.outstanding_then)
        return max(float(own), scraped)

    def now(self) -> float:
        return self._clock()

    def snapshot(self) -> list[dict[str, Any]]:
        """Every upstream's state, for operators (`GET /admin/upstreams`)."""
        now = self._clock()
        rows: list[dict[str, Any]] = []
        for state in self._states.values():
            row: dict[str, Any] = {
                "upstream": state.name,
                "status": self.status(state, now),
                "outstanding": state.outstanding,
                "consecutive_failures": state.failures,
                "healthy": state.healthy,
            }
            if state.cooled_until > now:
                row["cooling_for_s"] = round(state.cooled_until - now, 3)
            if state.health_detail:
                row["health_detail"] = state.health_detail
            load = self.fresh_load(state, now)
            if load is not None:
                row["load"] = {
                    "running": load.running,
                    "waiting": load.waiting,
                    "kv_cache": load.kv_cache,
                    "age_s": round(now - load.at, 3),
                }
            rows.append(row)
        return rows
