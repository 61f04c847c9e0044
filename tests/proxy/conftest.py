"""A real proxy on loopback in front of two real (fake-model) upstreams, per backend."""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from governance.access import Principal
from governance.audit.reader import AuditReader
from governance.audit.vault import MasterKey
from governance.config import Settings
from governance.config.loader import settings_from_mapping
from governance.db import AuditRecord, make_engine, session_factory
from governance.keys import KeyService
from governance.pii import TextAnalyzer
from proxy.app import create_app
from proxy.serving import BackgroundServer
from proxy.telemetry import Telemetry
from tests.support.audit_keys import write_audit_keys
from tests.support.pg import wait_until
from tests.support.policies import activate
from tests.upstream.faulty import FaultyUpstream
from tollhouse.demo.model_server import free_port

OPERATOR = Principal.operator("tests")  # creates the suite's principals and keys

# Per upstream model. beta's demo-llama (chat-unpriced) has no price on purpose.
_LARGE = {"input": "3.000001", "cached_input": "0.5", "output": "15.5"}
PRICES: dict[str, Any] = {
    "currency": "USD",
    "prices": [
        {
            "upstream": "alpha",
            "model": "demo-llama",
            "input": "0.25",
            "output": "1.25",
            "effective_from": "2025-01-01",
        },
        {
            "upstream": "alpha",
            "model": "demo-llama",
            "input": "0.10",
            "output": "0.40",
            "effective_from": "2026-01-01",
        },
        {"upstream": "alpha", "model": "demo-large", "effective_from": "2026-01-01", **_LARGE},
        {"upstream": "beta", "model": "demo-large", "effective_from": "2026-01-01", **_LARGE},
        {
            "upstream": "alpha",
            "model": "demo-embed",
            "input": "0.02",
            "output": "0",
            "effective_from": "2026-01-01",
        },
    ],
}
UPSTREAM_MODELS = ("demo-llama", "demo-large", "demo-embed")


def write_prices(directory: Path, document: dict[str, Any] | None = None) -> str:
    path = directory / "prices.yaml"
    path.write_text(yaml.safe_dump(document or PRICES), encoding="utf-8")
    return str(path)


def suite_config(alpha: str, beta: str, database_url: str) -> dict[str, Any]:
    upstream = {
        "kind": "openai_compatible",
        "destination": "internal",
        "timeout_s": 1.0,
        "connect_timeout_s": 1.0,
    }
    return {
        "database_url": database_url,
        "upstreams": [
            {"name": "alpha", "base_url": alpha, "api_key_env": "ALPHA_KEY", **upstream},
            {"name": "beta", "base_url": beta, **upstream},
        ],
        "models": [
            {"name": "chat-default", "deployments": [{"upstream": "alpha", "model": "demo-llama"}]},
            {
                "name": "chat-fallback",
                "deployments": [
                    {"upstream": "alpha", "model": "demo-large", "weight": 1},
                    {"upstream": "beta", "model": "demo-large", "weight": 0},
                ],
            },
            {
                "name": "embed-default",
                "deployments": [{"upstream": "alpha", "model": "demo-embed"}],
            },
            {"name": "chat-unpriced", "deployments": [{"upstream": "beta", "model": "demo-llama"}]},
        ],
        "policy": {"name": "suite-policy", "reload_interval_s": 0.2},
        "retry": {
            "attempts_per_deployment": 2,
            "backoff_initial_s": 0.01,
            "backoff_max_s": 0.05,
            "retry_after_max_s": 1.0,
        },
        "audit": {"write_timeout_s": 2.0},
        # The shared proxy serves every suite: one test's injected failures must not cool
        # an upstream down for the next (tests/proxy/test_load_routing.py tests cooldown).
        "routing": {"cooldown_after_failures": 0},
        "auth_cache_ttl_s": 0.2,
    }


# The suite's policy: no PII handling (the PII tests have their own), the ``suite`` app
# keeps full content, the ``quiet`` app keeps none and may only use chat-default.
SUITE_POLICY: dict[str, Any] = {
    "name": "suite-policy",
    "defaults": {"audit": {"content": "none"}, "content": {"secrets": "off"}},
    "overrides": [
        {
            "name": "suite-full",
            "match": {"apps": ["suite"]},
            "rules": {"audit": {"content": "full"}},
        },
        {
            "name": "quiet-narrow",
            "match": {"apps": ["quiet"]},
            "rules": {"models": ["chat-default"]},
        },
    ],
}


@dataclass
class Harness:
    url: str
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    keys: KeyService
    suite_key: str
    quiet_key: str
    alpha: FaultyUpstream
    beta: FaultyUpstream

    def client(self, key: str | None = None, **kwargs: Any) -> openai.OpenAI:
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 10)
        return openai.OpenAI(base_url=self.url, api_key=key or self.suite_key, **kwargs)

    def async_client(self, key: str | None = None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=self.url, api_key=key or self.suite_key, max_retries=0, timeout=10
        )

    def records(self, request_id: str) -> list[AuditRecord]:
        with self.sessions() as session:
            query = select(AuditRecord).where(AuditRecord.request_id == request_id)
            return list(session.scalars(query.order_by(AuditRecord.id)))

    def all_records(self) -> list[AuditRecord]:
        with self.sessions() as session:
            return list(session.scalars(select(AuditRecord)))

    def reader(self) -> AuditReader:
        path = self.settings.audit.master_key_file
        master = MasterKey.from_file(path) if path else None
        return AuditReader(self.engine, self.sessions, master)

    def content(self, request_id: str) -> list[dict[str, Any]]:
        """What the trail stored of each record of the request (decrypted), in order."""
        shown = self.reader().show(Principal.operator("suite-auditor"), request_id)
        return [record["content"] for record in shown]

    def completed(self, request_id: str, wait_s: float = 0.0) -> AuditRecord:
        """The request's completed record (polling up to ``wait_s`` for disconnects)."""
        if wait_s:
            wait_until(lambda: any(r.kind == "completed" for r in self.records(request_id)), wait_s)
        records = self.records(request_id)
        assert [r.kind for r in records] == ["admitted", "completed"], records
        return records[1]


@pytest.fixture(scope="session")
def upstreams() -> Iterator[tuple[FaultyUpstream, FaultyUpstream]]:
    alpha = FaultyUpstream("alpha", fingerprint="fp_alpha", models=UPSTREAM_MODELS).start()
    beta = FaultyUpstream("beta", fingerprint="fp_beta", models=UPSTREAM_MODELS).start()
    yield alpha, beta
    for upstream in (alpha, beta):
        assert upstream.server is not None
        upstream.server.stop()


@contextlib.contextmanager
def running_proxy(
    database_url: str,
    servers: tuple[FaultyUpstream, FaultyUpstream],
    analyzer: TextAnalyzer,
    policy: dict[str, Any] | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    observe: Callable[[Settings], Telemetry] | None = None,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> Iterator[Harness]:
    """A proxy on a free loopback port, with a ``suite`` and a ``quiet`` key.

    ``policy`` (default `SUITE_POLICY`) is published and activated before it starts;
    ``environ`` adds environment variables (other upstreams' synthetic keys) to ALPHA_KEY.
    """
    alpha, beta = servers
    raw = {**suite_config(alpha.url, beta.url, database_url), **overrides}
    # Audit keys unless the caller's ``audit`` overrides name them (None: no key).
    keys_dir = Path(tempfile.mkdtemp(prefix="tollhouse-audit-keys-"))
    audit = {**write_audit_keys(keys_dir), **raw["audit"]}
    raw["audit"] = {name: value for name, value in audit.items() if value is not None}
    raw.setdefault("spend", {"prices_file": write_prices(keys_dir)})
    document = policy or SUITE_POLICY
    raw["policy"] = {**raw["policy"], "name": document["name"]}
    settings = settings_from_mapping(
        raw, {"ALPHA_KEY": "sk-test-alpha-not-a-secret", **(environ or {})}
    )
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    activate(sessions, document)
    keys = KeyService(sessions)
    suite_key = keys.create_for_app("suite", "qa", actor=OPERATOR).secret
    quiet_key = keys.create_for_app("quiet", "ops", actor=OPERATOR).secret
    extra: dict[str, Any] = {"clock": clock} if clock else {}
    if observe is not None:  # the test's own telemetry (an in-memory transport)
        extra["telemetry"] = observe(settings)
    app = create_app(settings, analyzer=analyzer, **extra)
    server = BackgroundServer(app, "127.0.0.1", free_port()).start()
    try:
        yield Harness(
            url=f"{server.url}/v1",
            settings=settings,
            engine=engine,
            sessions=sessions,
            keys=keys,
            suite_key=suite_key,
            quiet_key=quiet_key,
            alpha=alpha,
            beta=beta,
        )
    finally:
        server.stop()
        engine.dispose()


@pytest.fixture(scope="session")
def harness(
    database_url: str, upstreams: tuple[FaultyUpstream, FaultyUpstream], analyzer: TextAnalyzer
) -> Iterator[Harness]:
    with running_proxy(database_url, upstreams, analyzer) as running:
        yield running


@pytest.fixture
def proxy(harness: Harness) -> Harness:
    """The harness with both upstreams' faults and request logs cleared."""
    harness.alpha.reset()
    harness.beta.reset()
    return harness
