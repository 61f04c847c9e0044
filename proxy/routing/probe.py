"""Background checks of upstreams that configure ``probe``: a health check and a scrape of
the replica's own metrics (vLLM's Prometheus gauges), each feeding the `ReplicaBoard`.

The probes run as one lifespan task per probed upstream, on the proxy's event loop, with
their own HTTP session (no API keys: vLLM serves /health and /metrics unauthenticated).
A failed scrape only forgets the load (routing falls back to this process's own count);
a failed health check marks the replica unhealthy until one passes again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from governance.config.routing import ProbeConfig
from governance.config.schema import UpstreamConfig
from proxy.routing.replicas import ReplicaBoard

log = logging.getLogger(__name__)

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
# vLLM's V1 engine name first; older releases called the gauge gpu_cache_usage_perc.
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
_WANTED = (RUNNING, WAITING, *KV_CACHE)


@dataclass(frozen=True, slots=True)
class ScrapedLoad:
    running: float
    waiting: float
    kv_cache: float | None


def parse_vllm_metrics(text: str) -> ScrapedLoad:
    """Sum running and waiting requests over every engine and model the page reports; the
    fullest KV cache among them. Raises ValueError when the page has no request gauges."""
    lines = "\n".join(line for line in text.splitlines() if line.startswith(_WANTED))
    sums: dict[str, float] = {}
    kv: float | None = None
    for family in text_string_to_metric_families(lines + "\n"):
        for sample in family.samples:
            if sample.name in (RUNNING, WAITING):
                sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
            elif sample.name in KV_CACHE:
                kv = sample.value if kv is None else max(kv, sample.value)
    if RUNNING not in sums and WAITING not in sums:
        raise ValueError(f"no {RUNNING} or {WAITING} gauge on the page")
    return ScrapedLoad(sums.get(RUNNING, 0.0), sums.get(WAITING, 0.0), kv)


class ReplicaProbe:
    def __init__(self, board: ReplicaBoard, upstreams: Iterable[UpstreamConfig]) -> None:
        self._board = board
        self._probed = [(u.name, u.probe) for u in upstreams if u.probe is not None]
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start one task per probed upstream (on the running loop)."""
        if not self._probed:
            return
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), trust_env=False
        )
        for name, probe in self._probed:
            self._tasks.append(asyncio.create_task(self._watch(name, probe)))

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def check(self, name: str, probe: ProbeConfig) -> None:
        """One round of checks (health, then load) for ``name``."""
        if probe.health_url is not None:
            ok, detail = await self._health(probe.health_url, probe.timeout_s)
            was = self._board.state(name).healthy
            self._board.record_health(name, ok, detail)
            first_pass = was is None and ok  # nothing worth a warning
            if was is not ok and not first_pass:
                log.warning(
                    "upstream %s health check %s%s",
                    name,
                    "passes again" if ok else "fails",
                    f" ({detail})" if detail else "",
                )
        if probe.metrics_url is not None:
            try:
                load = parse_vllm_metrics(await self._get(probe.metrics_url, probe.timeout_s))
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                self._board.forget_load(name)
                log.debug("upstream %s: metrics scrape failed (%s)", name, type(exc).__name__)
            else:
                self._board.record_load(name, load.running, load.waiting, load.kv_cache)

    async def _watch(self, name: str, probe: ProbeConfig) -> None:
        while True:
            try:
                await self.check(name, probe)
            except Exception:  # a probe must never die; the next round tries again
                log.exception("upstream %s: probe failed unexpectedly", name)
            await asyncio.sleep(probe.interval_s)

    async def _health(self, url: str, timeout_s: float) -> tuple[bool, str | None]:
        assert self._session is not None
        try:
            async with self._session.get(
                url, timeout=aiohttp.ClientTimeout(total=timeout_s), allow_redirects=False
            ) as response:
                if 200 <= response.status < 300:
                    return True, None
                return False, f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return False, type(exc).__name__

    async def _get(self, url: str, timeout_s: float) -> str:
        assert self._session is not None
        async with self._session.get(
            url, timeout=aiohttp.ClientTimeout(total=timeout_s), allow_redirects=False
        ) as response:
            response.raise_for_status()
            return await response.text()
