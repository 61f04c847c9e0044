"""The app factory: build state once in the lifespan, inject it, tear it down."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy import Engine
from starlette.applications import Starlette

from governance.audit import AuditWriter
from governance.config import load_settings, resolve_config_path
from governance.config.schema import Settings
from governance.db import make_engine, session_factory
from governance.errors import TollhouseError
from governance.keys import KeyService
from governance.spend import PriceTable
from proxy.auth import Authenticator
from proxy.errors import handle_tollhouse_error, handle_unexpected
from proxy.pipeline import Pipeline
from proxy.routes import ROUTES
from proxy.routing import Router
from proxy.state import AppState
from proxy.upstream import OpenAICompatibleAdapter, UpstreamAdapter


def build_adapters(settings: Settings) -> dict[str, UpstreamAdapter]:
    adapters: dict[str, UpstreamAdapter] = {}
    for upstream in settings.upstreams:
        key = settings.upstream_api_keys.get(upstream.name)
        adapters[upstream.name] = OpenAICompatibleAdapter(
            upstream, key.get_secret_value() if key else None
        )
    return adapters


def create_app(settings: Settings, engine: Engine | None = None) -> Starlette:
    """A Starlette app serving Tollhouse's OpenAI-compatible API for ``settings``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own_engine = engine is None
        db = (
            engine
            if engine is not None
            else make_engine(settings.database_url, busy_timeout_s=settings.audit.write_timeout_s)
        )
        writer = AuditWriter(
            db, batch_max=settings.audit.batch_max, queue_max=settings.audit.queue_max
        )
        writer.start()
        adapters = build_adapters(settings)
        pipeline = Pipeline(
            settings, writer, Router(adapters, settings.retry), PriceTable(settings.pricing)
        )
        authenticator = Authenticator(KeyService(session_factory(db)), settings.auth_cache_ttl_s)
        app.state.tollhouse = AppState(settings, db, writer, authenticator, pipeline, adapters)
        try:
            yield
        finally:
            for adapter in adapters.values():
                await adapter.close()
            writer.close()
            if own_engine:
                db.dispose()

    return Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        exception_handlers={TollhouseError: handle_tollhouse_error, Exception: handle_unexpected},
    )


def app_from_environment() -> Starlette:
    """Factory for ``uvicorn --factory`` workers: settings from ``$TOLLHOUSE_CONFIG``."""
    return create_app(load_settings(resolve_config_path(None)))
