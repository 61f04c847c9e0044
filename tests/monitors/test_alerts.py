"""Alerts: raise once, resolve after the cool-down, deliver to real sinks on loopback,
retry what failed, and never replay history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from governance.config.monitors import SinkConfig
from governance.db import AlertRecord, session_factory
from governance.errors import ConfigError, NotFoundError
from monitors.alerts import AlertBook, Finding
from monitors.sinks import AlertmanagerSink, Notifier, SlackSink, WebhookSink, build_sinks
from tests.support.receiver import Receiver, running_receiver

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += dt.timedelta(**kwargs)


@pytest.fixture
def sessions(fresh_engine: Engine) -> sessionmaker[Session]:
    return session_factory(fresh_engine)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


def drift(signal: str = "latency_ms", severity: str = "warning") -> Finding:
    return Finding(
        condition=f"drift-chat:drift:support/chat/vllm:{signal}",
        kind="drift",
        severity=severity,  # type: ignore[arg-type]
        subject="support/chat/vllm",
        summary=f"drift: {signal} of support/chat/vllm changed",
        details={"signal": signal, "effect": 0.4},
    )


def test_a_condition_is_one_alert_until_it_has_been_absent_for_the_cooldown(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock()
    book = AlertBook(sessions, clock=clock, cooldown=dt.timedelta(hours=1))
    first = book.reconcile("drift-chat", "support/chat/vllm", [drift()])
    assert len(first.raised) == 1
    clock.advance(minutes=10)
    again = book.reconcile("drift-chat", "support/chat/vllm", [drift()])
    assert again.raised == [] and again.still_firing == first.raised
    # Gone for 20 minutes: still inside the cool-down, so it stays open (no flapping).
    clock.advance(minutes=20)
    quiet = book.reconcile("drift-chat", "support/chat/vllm", [])
    assert quiet.resolved == [] and quiet.still_firing == first.raised
    clock.advance(minutes=45)
    done = book.reconcile("drift-chat", "support/chat/vllm", [])
    assert done.resolved == first.raised
    assert book.firing("drift-chat") == 0
    # A later episode is a new row; the first keeps its history.
    clock.advance(hours=5)
    later = book.reconcile("drift-chat", "support/chat/vllm", [drift()])
    assert len(later.raised) == 1 and later.raised != first.raised
    with sessions() as session:
        rows = session.scalars(select(AlertRecord).order_by(AlertRecord.id)).all()
        assert [r.resolved_at is None for r in rows] == [False, True]
        assert rows[0].occurrences == 2
        assert rows[0].condition == rows[1].condition


def test_other_subjects_and_jobs_are_left_alone(sessions: sessionmaker[Session]) -> None:
    book = AlertBook(sessions, clock=Clock())
    book.reconcile("drift-chat", "support/chat/vllm", [drift()])
    changes = book.reconcile("drift-chat", "billing/chat/vllm", [])
    assert changes.resolved == []
    assert book.firing("drift-chat") == 1


def test_events_stay_open_until_acknowledged(sessions: sessionmaker[Session]) -> None:
    clock = Clock()
    book = AlertBook(sessions, clock=clock)
    event = Finding(
        condition="fp:fingerprint:alpha/demo-llama:demo-llama|fp_2",
        kind="model_change.fingerprint",
        severity="info",
        subject="alpha/demo-llama",
        summary="alpha/demo-llama now answers as ...",
        event=True,
    )
    (alert_id,) = book.reconcile("fp", "alpha/demo-llama", [event]).raised
    clock.advance(days=2)
    assert book.reconcile("fp", "alpha/demo-llama", []).still_firing == [alert_id]
    acked = book.acknowledge(alert_id, "local:sre")
    assert acked.acknowledged_by == "local:sre" and acked.resolved_at == clock.now
    with pytest.raises(NotFoundError):
        book.acknowledge(999_999, "local:sre")


def test_acknowledging_a_condition_does_not_resolve_it(sessions: sessionmaker[Session]) -> None:
    book = AlertBook(sessions, clock=Clock())
    (alert_id,) = book.reconcile("drift-chat", "support/chat/vllm", [drift()]).raised
    assert book.acknowledge(alert_id, "local:sre").resolved_at is None


def test_every_sink_kind_gets_firing_then_resolved(
    sessions: sessionmaker[Session], receiver: Receiver
) -> None:
    clock = Clock()
    book = AlertBook(sessions, clock=clock)
    sinks = [
        WebhookSink("webhook", f"{receiver.url}/hook"),
        SlackSink("slack", f"{receiver.url}/services/T000/B000/XXXX"),
        AlertmanagerSink("am", receiver.url),
    ]
    notifier = Notifier(sessions, sinks, clock=clock)
    (alert_id,) = book.reconcile("drift-chat", "support/chat/vllm", [drift()]).raised
    assert notifier.deliver().delivered == 1
    (hook,) = receiver.bodies("/hook")
    assert hook["status"] == "firing" and hook["alert"]["id"] == alert_id
    assert hook["alert"]["details"]["signal"] == "latency_ms"
    assert hook["delivery_id"] == f"{alert_id}:firing:1"
    (slack,) = receiver.bodies("/XXXX")
    assert "WARNING" in slack["text"] and "latency_ms" in slack["text"]
    (am,) = receiver.bodies("/api/v2/alerts")
    assert am[0]["labels"]["alertname"] == "Tollhouse_Drift"
    assert am[0]["labels"]["severity"] == "warning" and "endsAt" not in am[0]

    # Nothing new: the webhook and Slack hear nothing; Alertmanager is reminded.
    receiver.clear()
    assert notifier.deliver().delivered == 0
    assert receiver.bodies("/hook") == [] and receiver.bodies("/XXXX") == []
    assert len(receiver.bodies("/api/v2/alerts")) == 1

    receiver.clear()
    clock.advance(hours=2)
    book.reconcile("drift-chat", "support/chat/vllm", [])
    assert notifier.deliver().delivered == 1
    assert receiver.bodies("/hook")[0]["status"] == "resolved"
    assert "RESOLVED" in receiver.bodies("/XXXX")[0]["text"]
    assert receiver.bodies("/api/v2/alerts")[0][0]["endsAt"] == clock.now.isoformat()


def test_a_failed_delivery_is_retried_on_the_next_pass(
    sessions: sessionmaker[Session], receiver: Receiver
) -> None:
    clock = Clock()
    book = AlertBook(sessions, clock=clock)
    notifier = Notifier(
        sessions,
        [WebhookSink("webhook", receiver.url, retries=1, sleep=lambda _: None)],
        clock=clock,
    )
    book.reconcile("drift-chat", "support/chat/vllm", [drift()])
    receiver.fail_next = 2  # the first try and its retry
    result = notifier.deliver()
    assert result.delivered == 0 and result.failed and "HTTP 503" in result.failed[0]
    assert receiver.bodies() == []
    assert notifier.deliver().delivered == 1
    assert [b["status"] for b in receiver.bodies()] == ["firing"]


def test_sinks_filter_by_severity_and_do_not_replay_history(
    sessions: sessionmaker[Session], receiver: Receiver
) -> None:
    clock = Clock()
    book = AlertBook(sessions, clock=clock)
    book.reconcile("old", "support/chat/vllm", [drift("old_signal")])
    clock.advance(days=3)  # raised before anyone configured a sink: not replayed
    notifier = Notifier(
        sessions, [WebhookSink("webhook", receiver.url, min_severity="critical")], clock=clock
    )
    book.reconcile("drift-chat", "support/chat/vllm", [drift("a"), drift("b", "critical")])
    notifier.deliver()
    assert [b["alert"]["details"]["signal"] for b in receiver.bodies()] == ["b"]


def test_an_unreachable_sink_is_a_delivery_failure_naming_only_the_host(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock()
    AlertBook(sessions, clock=clock).reconcile("d", "s", [drift()])
    secret_path = "/services/T000/B000/not-a-real-secret"
    sink = SlackSink("slack", f"http://127.0.0.1:9{secret_path}", retries=0, timeout_s=1)
    result = Notifier(sessions, [sink], clock=clock).deliver()
    assert result.failed and "127.0.0.1:9/..." in result.failed[0]
    assert "not-a-real-secret" not in result.failed[0]


def test_sink_urls_from_the_environment() -> None:
    configs = [SinkConfig(kind="slack", url_env="SLACK_HOOK")]
    with pytest.raises(ConfigError, match="SLACK_HOOK is not set"):
        build_sinks(configs, {})
    (sink,) = build_sinks(configs, {"SLACK_HOOK": "http://127.0.0.1:1/hook"})
    assert isinstance(sink, SlackSink)
    with pytest.raises(ValueError, match="exactly one of url or url_env"):
        SinkConfig(kind="webhook")
