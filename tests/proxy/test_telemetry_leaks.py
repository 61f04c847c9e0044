"""Secrets and personal data planted in prompts, headers, model names and upstream errors
never reach a log line, a span or a metric label.

Everything is switched on for this: DEBUG logs in JSON (one line per completed request,
with its error message), traces with content capture, Prometheus and in-memory metrics.
The test also checks that the planted values did travel through those paths (the logs
and spans mention the request, masked), so an empty log could not pass it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from governance.config import Settings
from governance.observability import configure_logging
from governance.pii import TextAnalyzer
from proxy.app import scrubber_for
from proxy.telemetry import Telemetry, build_telemetry
from tests.proxy.conftest import Harness, running_proxy
from tests.support.otlp import MemoryTransport, scrape_prometheus
from tests.upstream.faulty import Fault, FaultyUpstream

EMAIL = "maria.jansen@example.com"
PHONE = "+1 212-555-0147"
CARD = "4111 1111 1111 1111"
SSN = "536-22-1847"
IBAN = "GB82 WEST 1234 5698 7654 32"
UPSTREAM_KEY = "sk-test-alpha-not-a-secret"  # the conftest's ALPHA_KEY
PROMPT_SECRET = "sk-proj-" + "Q" * 8 + secrets.token_urlsafe(24)
HEADER_SECRET = "sk-proj-" + secrets.token_urlsafe(30)
COOKIE_SECRET = secrets.token_urlsafe(24)
FORGED_KEY = f"th-deadbeef-{secrets.token_urlsafe(24)}"

POLICY: dict[str, Any] = {
    "name": "leak-policy",
    "defaults": {
        "audit": {"content": "redacted"},
        "content": {"secrets": "block"},
        "pii": {
            "default": {"internal": "allow", "external": "mask"},
            "entities": {"EMAIL_ADDRESS": {"internal": "allow", "external": "pseudonymize"}},
        },
    },
}


def _config(alpha: FaultyUpstream, beta: FaultyUpstream) -> dict[str, Any]:
    common = {"kind": "openai_compatible", "timeout_s": 2.0, "connect_timeout_s": 1.0}
    return {
        "upstreams": [
            {
                "name": "alpha",
                "base_url": alpha.url,
                "destination": "external",
                "api_key_env": "ALPHA_KEY",
                **common,
            },
            {"name": "beta", "base_url": beta.url, "destination": "external", **common},
        ],
        "models": [
            {
                "name": "chat-external",
                "deployments": [{"upstream": "alpha", "model": "demo-llama"}],
            },
            {"name": "chat-beta", "deployments": [{"upstream": "beta", "model": "demo-llama"}]},
        ],
        "telemetry": {
            "prometheus": True,
            "capture_content": True,
            "traces": "otlp",
            "metrics": "otlp",
            "metric_export_interval_s": 3600,
        },
    }


class Sinks:
    def __init__(self) -> None:
        self.logs = io.StringIO()
        self.exported = MemoryTransport()
        self.telemetry: Telemetry | None = None
        self.handler: logging.Handler | None = None

    def build(self, settings: Settings) -> Telemetry:
        scrubber = scrubber_for(settings)
        self.handler = configure_logging("DEBUG", "json", scrubber, self.logs)
        self.telemetry = build_telemetry(settings, scrubber, transport=self.exported)
        return self.telemetry


@pytest.fixture
def leaky(
    database_url: str, upstreams: tuple[FaultyUpstream, FaultyUpstream], analyzer: TextAnalyzer
) -> Iterator[tuple[Harness, Sinks]]:
    sinks = Sinks()
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    for upstream in upstreams:
        upstream.reset()
    try:
        with running_proxy(
            database_url,
            upstreams,
            analyzer,
            policy=POLICY,
            observe=sinks.build,
            **_config(*upstreams),
        ) as harness:
            yield harness, sinks
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)


def _traffic(harness: Harness) -> list[str]:
    """Requests carrying the planted values; returns their request ids."""
    headers = {"x-api-key": HEADER_SECRET, "Cookie": f"session={COOKIE_SECRET}"}
    client = harness.client(default_headers=headers)
    prompt = f"Contact {EMAIL} or {PHONE}; card {CARD}, SSN {SSN}, IBAN {IBAN}. Summarise politely."
    ids = []
    raw = client.chat.completions.with_raw_response.create(
        model="chat-external", messages=[{"role": "user", "content": prompt}], user=EMAIL
    )
    ids.append(raw.headers["x-request-id"])
    stream = client.chat.completions.with_raw_response.create(
        model="chat-external",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        user=EMAIL,
    )
    list(stream.parse())
    ids.append(stream.headers["x-request-id"])
    with pytest.raises(openai.BadRequestError) as blocked:  # a secret in the prompt
        client.chat.completions.create(
            model="chat-external",
            messages=[{"role": "user", "content": f"my key is {PROMPT_SECRET}"}],
        )
    ids.append(blocked.value.response.headers["x-request-id"])
    with pytest.raises(openai.NotFoundError) as unknown:  # personal data as a model name
        client.chat.completions.create(
            model=f"gpt-{EMAIL}", messages=[{"role": "user", "content": "hi"}]
        )
    ids.append(unknown.value.response.headers["x-request-id"])
    harness.beta.inject(Fault("status", status=400, message=f"rejected: {EMAIL} paid with {CARD}"))
    with pytest.raises(openai.BadRequestError) as echoed:  # an upstream quoting the prompt
        client.chat.completions.create(
            model="chat-beta", messages=[{"role": "user", "content": f"for {EMAIL}"}]
        )
    ids.append(echoed.value.response.headers["x-request-id"])
    forged = harness.client(key=FORGED_KEY, default_headers=headers)
    with pytest.raises(openai.AuthenticationError):
        forged.chat.completions.create(
            model="chat-external", messages=[{"role": "user", "content": EMAIL}]
        )
    return ids


def _span_text(sinks: Sinks) -> str:
    assert sinks.telemetry is not None
    sinks.telemetry.flush()
    spans = sinks.exported.spans()
    assert spans  # the requests were traced
    return "\n".join(json.dumps(dataclasses.asdict(span), default=str) for span in spans)


def _metric_labels(sinks: Sinks, harness: Harness) -> str:
    assert sinks.telemetry is not None
    sinks.telemetry.flush()
    labels = [point.attributes for point in sinks.exported.points()]
    assert labels  # metrics were exported
    scraped = scrape_prometheus(harness.url.removesuffix("/v1") + "/metrics")
    prometheus = [labels for samples in scraped.values() for labels, _ in samples]
    return json.dumps(labels + prometheus)


def test_planted_secrets_and_pii_reach_no_log_span_or_metric(
    leaky: tuple[Harness, Sinks],
) -> None:
    harness, sinks = leaky
    suite_key = harness.suite_key
    ids = _traffic(harness)
    logs = sinks.logs.getvalue()
    spans = _span_text(sinks)
    metrics = _metric_labels(sinks, harness)

    planted = [EMAIL, PHONE, CARD, SSN, IBAN, UPSTREAM_KEY, PROMPT_SECRET, HEADER_SECRET]
    planted += [COOKIE_SECRET, FORGED_KEY, suite_key, CARD.replace(" ", "")]
    for where, text in (("logs", logs), ("spans", spans), ("metrics", metrics)):
        for value in planted:
            assert value not in text, f"{value!r} reached the {where}"

    # The values did go through these paths, masked: the check above is not vacuous.
    lines = [json.loads(line) for line in logs.splitlines()]
    logged = {line.get("request_id") for line in lines}
    assert set(ids) <= logged
    echoed = next(line for line in lines if line.get("request_id") == ids[4])
    assert "[EMAIL_ADDRESS]" in echoed["message"] and "[CREDIT_CARD]" in echoed["message"]
    assert all("trace_id" in line for line in lines if line.get("request_id") in ids)
    assert "<EMAIL_ADDRESS>" in spans  # captured content, masked by the PII policy
    assert "gen_ai.input.messages" in spans
    assert "tollhouse_decisions_total" in json.dumps(
        scrape_prometheus(harness.url.removesuffix("/v1") + "/metrics")
    )
