"""The app factory: build state once in the lifespan, inject it, tear it down."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route

from governance.access.principals import PrincipalService
from governance.audit import AuditWriter
from governance.audit.checkpoint import Checkpointer, load_signing_key
from governance.audit.reader import AuditReader
from governance.audit.retention import Retention
from governance.audit.traffic import TrafficLedger
from governance.audit.vault import DataKeys, MasterKey
from governance.config import load_settings, resolve_config_path
from governance.config.schema import Destination, Settings
from governance.db import make_engine, session_factory
from governance.errors import TollhouseError
from governance.keys import KeyService
from governance.observability import Scrubber, configure_logging
from governance.pii import TextAnalyzer
from governance.policy.store import PolicyStore
from governance.spend.ledger import Ledger
from proxy.admin import build_admin_app
from proxy.admin.state import AdminState
from proxy.auth import Authenticator
from proxy.errors import handle_tollhouse_error, handle_unexpected
from proxy.pii_gate import PiiGate
from proxy.pipeline import Pipeline
from proxy.policies import PolicyCache
from proxy.routes import ROUTES
from proxy.routing import ReplicaBoard, Router
from proxy.routing.probe import ReplicaProbe
from proxy.spend import build_accounting
from proxy.state import AppState
from proxy.telemetry import Telemetry, TelemetryMiddleware, build_telemetry, prometheus
from proxy.upstream import UpstreamAdapter
from proxy.upstream.registry import build_adapter

log = logging.getLogger(__name__)


def build_adapters(settings: Settings) -> dict[str, UpstreamAdapter]:
    adapters: dict[str, UpstreamAdapter] = {}
    for upstream in settings.upstreams:
        key = settings.upstream_api_keys.get(upstream.name)
        adapters[upstream.name] = build_adapter(upstream, key.get_secret_value() if key else None)
    return adapters


def destinations_of(settings: Settings) -> dict[str, frozenset[Destination]]:
    """Where each model alias's deployments send data."""
    upstreams = {u.name: u.destination for u in settings.upstreams}
    return {
        m.name: frozenset(upstreams[d.upstream] for d in m.deployments) for m in settings.models
    }


def build_data_keys(settings: Settings) -> DataKeys | None:
    """Data keys for ``full`` content, when a master key is configured."""
    path = settings.audit.master_key_file
    if path is None:
        return None
    return DataKeys(MasterKey.from_file(path), ttl_s=settings.audit.data_key_cache_s)


def build_checkpointer(settings: Settings, engine: Engine) -> Checkpointer | None:
    path = settings.audit.signing_key_file
    return None if path is None else Checkpointer(engine, load_signing_key(path))


def sign_once(checkpointer: Checkpointer) -> None:
    """Sign the chain heads; a failure is logged, and the next round tries again."""
    try:
        checkpointer.write()
    except Exception as exc:
        log.warning("could not write an audit checkpoint (%s: %s)", type(exc).__name__, exc)


async def sign_periodically(checkpointer: Checkpointer | None, settings: Settings) -> None:
    if checkpointer is None:
        return
    while True:
        await asyncio.sleep(settings.audit.checkpoint_interval_s)
        await asyncio.to_thread(sign_once, checkpointer)


def build_admin_state(
    settings: Settings,
    engine: Engine,
    sessions: sessionmaker[Session],
    authenticator: Authenticator,
    checkpointer: Checkpointer | None,
    board: ReplicaBoard,
) -> AdminState:
    path = settings.audit.master_key_file
    return AdminState(
        settings=settings,
        engine=engine,
        sessions=sessions,
        authenticator=authenticator,
        principals=PrincipalService(sessions),
        keys=KeyService(sessions),
        policies=PolicyStore(sessions, four_eyes=settings.access.four_eyes),
        reader=AuditReader(engine, sessions, MasterKey.from_file(path) if path else None),
        retention=Retention(sessions),
        checkpointer=checkpointer,
        board=board,
    )


def build_pii_gate(settings: Settings, analyzer: TextAnalyzer | None) -> PiiGate:
    """The analyzer is loaded now (``pii.preload``) or on first use; a missing model is a
    start-up error with preload, a refused request (503) without."""
    config = settings.pii
    if analyzer is None:
        from governance.pii.analyzer import build_analyzer

        analyzer = build_analyzer(config) if config.preload else None
        if analyzer is None:
            return PiiGate(lambda: build_analyzer(config), config.timeout_s, config.threads)
    return PiiGate(analyzer, config.timeout_s, config.threads)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def scrubber_for(settings: Settings) -> Scrubber:
    """A scrubber that also knows the configured upstream keys by value."""
    return Scrubber(key.get_secret_value() for key in settings.upstream_api_keys.values())


def create_app(
    settings: Settings,
    engine: Engine | None = None,
    analyzer: TextAnalyzer | None = None,
    clock: Callable[[], dt.datetime] = _now,
    telemetry: Telemetry | None = None,
) -> Starlette:
    """A Starlette app serving Tollhouse's OpenAI-compatible API for ``settings``.

    ``engine``, ``analyzer`` and ``telemetry`` may be passed in (tests share them or
    read spans from memory); otherwise they are built here from the settings. ``clock``
    dates requests (prices and budget periods follow it); tests move it to a chosen day.
    """
    from governance.pii.analyzer import build_custom_recognizers

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own_engine = engine is None
        observed = (
            telemetry
            if telemetry is not None
            else await asyncio.to_thread(build_telemetry, settings, scrubber_for(settings))
        )
        db = (
            engine
            if engine is not None
            else make_engine(settings.database_url, busy_timeout_s=settings.audit.write_timeout_s)
        )
        writer = AuditWriter(
            db,
            batch_max=settings.audit.batch_max,
            queue_max=settings.audit.queue_max,
            data_keys=build_data_keys(settings),
            ledgers=[Ledger(), TrafficLedger()],
        )
        checkpointer = build_checkpointer(settings, db)
        writer.start()
        observed.start()
        observed.instruments.observe_audit_queue(lambda: writer.queued_records)
        adapters = build_adapters(settings)
        policies = PolicyCache(
            PolicyStore(session_factory(db)),
            settings.policy.name,
            destinations_of(settings),
            build_custom_recognizers,
            settings.policy.reload_interval_s,
        )
        await asyncio.to_thread(policies.refresh)
        watcher = asyncio.create_task(policies.watch())
        signer = asyncio.create_task(sign_periodically(checkpointer, settings))
        gate = await asyncio.to_thread(build_pii_gate, settings, analyzer)
        sessions = session_factory(db)
        accounting, prices = await asyncio.to_thread(
            build_accounting, settings, db, sessions, clock
        )
        price_watcher = asyncio.create_task(prices.watch())
        pruner = asyncio.create_task(accounting.prune_periodically())
        board = ReplicaBoard(adapters, settings.routing)
        probe = ReplicaProbe(board, settings.upstreams)
        probe.start()
        pipeline = Pipeline(
            settings,
            writer,
            Router(adapters, settings.retry, board),
            accounting,
            policies,
            gate,
            clock,
            observed,
        )
        authenticator = Authenticator(KeyService(sessions), settings.auth_cache_ttl_s)
        admin.state.admin = build_admin_state(
            settings, db, sessions, authenticator, checkpointer, board
        )
        app.state.tollhouse = AppState(
            settings, db, writer, authenticator, pipeline, adapters, policies, observed
        )
        try:
            yield
        finally:
            watcher.cancel()
            signer.cancel()
            price_watcher.cancel()
            pruner.cancel()
            await probe.aclose()
            accounting.close()
            gate.close()
            for adapter in adapters.values():
                await adapter.close()
            writer.close()
            if checkpointer is not None:
                await asyncio.to_thread(sign_once, checkpointer)
            if own_engine:
                db.dispose()
            await observed.aclose()  # whoever built it: its tasks ran on this loop

    admin = build_admin_app()
    routes = [*ROUTES, Mount("/admin", app=admin)]
    if settings.telemetry.prometheus:
        routes.append(Route("/metrics", prometheus.metrics, methods=["GET"]))
    return Starlette(
        routes=routes,
        middleware=[Middleware(TelemetryMiddleware)],
        lifespan=lifespan,
        exception_handlers={TollhouseError: handle_tollhouse_error, Exception: handle_unexpected},
    )


def app_from_environment() -> Starlette:
    """Factory for ``uvicorn --factory`` workers: settings from ``$TOLLHOUSE_CONFIG``."""
    settings = load_settings(resolve_config_path(None))
    configure_logging(settings.logging.level, settings.logging.format, scrubber_for(settings))
    return create_app(settings)
