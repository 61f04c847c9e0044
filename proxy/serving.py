"""Running the proxy in a background thread (the demo and the test suite use this)."""

from __future__ import annotations

import threading
import time

import uvicorn
from starlette.applications import Starlette


class BackgroundServer:
    """A uvicorn server on its own thread and event loop."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name="tollhouse-proxy", daemon=True
        )
        self.url = f"http://{host}:{port}"

    def start(self, timeout_s: float = 20.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the proxy did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(20)
