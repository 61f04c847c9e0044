"""``tollhouse serve``: run the proxy under uvicorn."""

from __future__ import annotations

import argparse
import os
from typing import Any

import uvicorn

from governance.config import ENV_CONFIG_PATH, resolve_config_path
from governance.observability import configure_logging
from proxy.app import create_app, scrubber_for
from tollhouse.commands.context import load, open_database


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("serve", parents=[common], help="run the proxy")
    parser.add_argument("--host", help="bind address (default: server.host)")
    parser.add_argument("--port", type=int, help="port (default: server.port)")
    parser.add_argument("--workers", type=int, help="processes (default: server.workers)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load(args)
    open_database(settings).engine.dispose()  # fail fast: reachable and migrated
    host = args.host or settings.server.host
    port = args.port or settings.server.port
    workers = args.workers or settings.server.workers
    configure_logging(settings.logging.level, settings.logging.format, scrubber_for(settings))
    if workers == 1:
        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            log_config=None,  # keep the scrubbing handler configure_logging installed
            access_log=False,
            proxy_headers=False,  # nothing reads the client address; one layer less
        )
        return 0
    # Each worker process builds its own app (and audit writer) from the same file.
    os.environ[ENV_CONFIG_PATH] = str(resolve_config_path(args.config).resolve())
    uvicorn.run(
        "proxy.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,  # each worker configures logging in app_from_environment
        access_log=False,
        proxy_headers=False,
    )
    return 0
