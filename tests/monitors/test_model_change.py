"""Silent model change, end to end: a real proxy in front of a sampling upstream, the
monitor jobs run as the command runs them, and a real webhook receiver on loopback.

- passive: the upstream starts answering with another ``system_fingerprint`` → one
  information alert, delivered once; an unchanged upstream → nothing;
- active: canaries through the proxy; the same model → no alert; the upstream quietly
  sampling hotter behind the same name and fingerprint → a confirmed alert; back to
  normal → resolved.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from governance.config.monitors import AlertsConfig, CanaryJob, FingerprintsJob, MonitorsConfig
from governance.db import AuditRecord, CanarySample, MonitorRun
from governance.pii import TextAnalyzer
from monitors.alerts import AlertBook
from monitors.canary.client import ProxyCanaryClient
from monitors.jobs import EXIT_FIRING, EXIT_QUIET, JobResult, Services, run_job
from monitors.sinks import Notifier, WebhookSink
from tests.proxy.conftest import (
    OPERATOR,
    UPSTREAM_MODELS,
    Harness,
    running_proxy,
    suite_config,
)
from tests.support.receiver import Receiver, running_receiver
from tests.upstream.faulty import FaultyUpstream
from tests.upstream.sampling import SamplingUpstream


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Monitored:
    proxy: Harness
    upstream: SamplingUpstream
    receiver: Receiver
    services: Services

    def run(self, job: Any) -> JobResult:
        return run_job(self.services, job)

    def chat(self, times: int) -> None:
        client = self.proxy.client()
        for i in range(times):
            client.chat.completions.create(
                model="chat-default", messages=[{"role": "user", "content": f"hello {i}"}]
            )


@pytest.fixture
def monitored(fresh_database_url: str, analyzer: TextAnalyzer) -> Iterator[Monitored]:
    alpha = SamplingUpstream("alpha", models=UPSTREAM_MODELS).start()
    beta = FaultyUpstream("beta", models=UPSTREAM_MODELS).start()
    watched = suite_config(alpha.url, beta.url, fresh_database_url)["upstreams"]
    watched[0] = {**watched[0], "fingerprint_headers": ["X-Model-Version"]}
    try:
        with (
            running_receiver() as receiver,
            running_proxy(fresh_database_url, (alpha, beta), analyzer, upstreams=watched) as proxy,
        ):
            canary_key = proxy.keys.create_for_app("canary", "sre", actor=OPERATOR).secret
            config = MonitorsConfig(alerts=AlertsConfig(cooldown_s=0))
            services = Services(
                config=config,
                sessions=proxy.sessions,
                clock=_now,
                alerts=AlertBook(proxy.sessions, clock=_now),
                notifier=Notifier(
                    proxy.sessions, [WebhookSink("webhook", f"{receiver.url}/hook")], clock=_now
                ),
                canary_client=lambda: ProxyCanaryClient(proxy.url, canary_key, concurrency=4),
                embedder=lambda: None,
            )
            yield Monitored(proxy, alpha, receiver, services)
    finally:
        for upstream in (alpha, beta):
            assert upstream.server is not None
            upstream.server.stop()


FINGERPRINTS = FingerprintsJob(kind="fingerprints", name="fingerprints")


def test_a_changed_fingerprint_raises_one_information_alert(monitored: Monitored) -> None:
    monitored.chat(3)
    first = monitored.run(FINGERPRINTS)
    assert first.exit_status == EXIT_QUIET and monitored.receiver.bodies() == []

    monitored.chat(2)  # same identity: still nothing
    assert monitored.run(FINGERPRINTS).exit_status == EXIT_QUIET
    assert monitored.receiver.bodies() == []

    monitored.upstream.fingerprint = "fp_demo02"
    monitored.chat(2)
    changed = monitored.run(FINGERPRINTS)
    assert changed.exit_status == EXIT_FIRING
    (body,) = monitored.receiver.bodies("/hook")
    alert = body["alert"]
    assert body["status"] == "firing"
    assert alert["kind"] == "model_change.fingerprint" and alert["severity"] == "info"
    assert alert["subject"] == "alpha/demo-llama"
    assert alert["details"]["system_fingerprint"] == "fp_demo02"
    assert alert["details"]["previous_system_fingerprint"] == "fp_demo01"

    monitored.chat(1)  # seen again: no second notification
    monitored.run(FINGERPRINTS)
    assert len(monitored.receiver.bodies("/hook")) == 1

    # Same model string and fingerprint, but the watched header says another version.
    monitored.upstream.version_header = "2026-02"
    monitored.chat(1)
    monitored.run(FINGERPRINTS)
    second = monitored.receiver.bodies("/hook")[1]["alert"]
    assert second["details"]["headers"] == {"x-model-version": "2026-02"}
    assert second["details"]["previous_headers"] == {"x-model-version": "2026-01"}
    assert "x-model-version: '2026-02'" in second["summary"]
    with monitored.proxy.sessions() as session:
        runs = session.scalars(select(MonitorRun).where(MonitorRun.job == "fingerprints")).all()
        assert [r.status for r in runs] == ["ok", "ok", "alerting", "ok", "alerting"]
        assert runs[2].figures is not None and runs[2].figures["changes"][0]["upstream"] == "alpha"
        (record,) = session.scalars(
            select(AuditRecord)
            .where(AuditRecord.kind == "completed")
            .order_by(AuditRecord.id.desc())
            .limit(1)
        ).all()
        assert record.attempts is not None
        assert record.attempts[-1]["headers"] == {"x-model-version": "2026-02"}


CANARY = CanaryJob(
    kind="canary",
    name="canary-chat",
    model="chat-default",
    prompts=10,
    samples=10,
    max_tokens=8,
    temperature=1.0,
)


def test_canaries_catch_a_silent_change_and_resolve_when_it_is_undone(
    monitored: Monitored,
) -> None:
    baseline = monitored.run(CANARY)
    assert baseline.exit_status == EXIT_QUIET, baseline.error
    unchanged = monitored.run(CANARY)
    assert unchanged.exit_status == EXIT_QUIET
    assert monitored.receiver.bodies() == []

    monitored.upstream.temperature_scale = 1.5  # same name, same fingerprint
    changed = monitored.run(CANARY)
    assert changed.exit_status == EXIT_FIRING
    (body,) = monitored.receiver.bodies("/hook")
    assert body["alert"]["kind"] == "model_change.canary"
    assert body["alert"]["subject"] == "chat-default"
    assert body["alert"]["details"]["p_distribution"] < CANARY.alpha / 2

    monitored.upstream.temperature_scale = 1.0
    back = monitored.run(CANARY)
    assert back.exit_status == EXIT_QUIET
    assert [b["status"] for b in monitored.receiver.bodies("/hook")] == ["firing", "resolved"]

    with monitored.proxy.sessions() as session:
        runs = session.scalars(
            select(MonitorRun).where(MonitorRun.job == "canary-chat").order_by(MonitorRun.id)
        ).all()
        assert [r.status for r in runs] == ["ok", "ok", "alerting", "ok"]
        assert runs[0].figures is not None and runs[0].figures["baseline_run"] == runs[0].id
        assert runs[1].figures is not None and runs[1].figures["logprobs"] is True
        assert runs[2].figures is not None and "confirm" in runs[2].figures
        batches = session.execute(
            select(CanarySample.batch, func.count()).group_by(CanarySample.batch)
        ).all()
        assert dict(batches) == {"baseline": 100, "check": 300, "confirm": 100}
        # Canary traffic went through the proxy: audited and costed under its own app.
        canary = session.scalars(
            select(AuditRecord).where(AuditRecord.app == "canary", AuditRecord.kind == "completed")
        ).all()
        assert len(canary) == 10 * 5  # ten prompts, five batches
        assert all(r.status == "ok" and r.cost is not None for r in canary)
