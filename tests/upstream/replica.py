"""A model-server replica as routing sees one: the fault-injecting test upstream plus the
two pages vLLM serves for operators, ``/health`` and a Prometheus ``/metrics`` page with
the gauges the proxy's probe reads; both set from the test. `stop` and `start` kill and
revive it on the same port."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.upstream.faulty import FaultyUpstream
from tollhouse.demo.model_server import ServerThread, free_port


class Replica(FaultyUpstream):
    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.port = free_port()
        self.health_status = 200
        self.running = 0.0
        self.waiting = 0.0
        self.kv_cache = 0.0
        self.scrapes = 0

    def application(self) -> web.Application:
        app = super().application()
        app.router.add_get("/metrics", self._metrics)
        return app

    def start(self) -> Replica:
        self.server = ServerThread(self.application(), port=self.port).start()
        return self

    def stop(self) -> None:
        """Kill it: the port refuses connections until `start`."""
        assert self.server is not None
        self.server.stop()

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_load(self, running: float, waiting: float = 0.0, kv_cache: float = 0.0) -> None:
        self.running, self.waiting, self.kv_cache = running, waiting, kv_cache

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(
            text="ok" if self.health_status == 200 else "unwell", status=self.health_status
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        self.scrapes += 1
        labels = '{engine="0",model_name="demo-llama"}'
        page = (
            "# TYPE vllm:num_requests_running gauge\n"
            f"vllm:num_requests_running{labels} {self.running}\n"
            "# TYPE vllm:num_requests_waiting gauge\n"
            f"vllm:num_requests_waiting{labels} {self.waiting}\n"
            "# TYPE vllm:kv_cache_usage_perc gauge\n"
            f"vllm:kv_cache_usage_perc{labels} {self.kv_cache}\n"
        )
        return web.Response(text=page, content_type="text/plain")
