"""A drift job as `tollhouse monitors` runs it: synthetic traffic through the real audit
writer, the job's run stored with its Evidently report, and the alert at a real webhook
receiver on loopback: nothing for stable windows, ``firing`` for a latency regression,
``resolved`` once latency is back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from governance.config.monitors import AlertsConfig, DriftJob, FrozenReference, MonitorsConfig
from governance.db import MonitorRun, make_engine, session_factory
from monitors.alerts import AlertBook
from monitors.jobs import EXIT_FIRING, EXIT_QUIET, Services, run_job
from monitors.sinks import Notifier, WebhookSink
from tests.monitors.test_drift_job import HOUR, MASTER, T0, Mix, seed
from tests.support.receiver import Receiver, running_receiver


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def traffic(fresh_database_url: str) -> Iterator[sessionmaker[Session]]:
    """Six stable hours (the frozen baseline), two more, a slow hour, a stable one."""
    engine = make_engine(fresh_database_url)
    hours = {h: Mix(requests=120) for h in range(10)}
    hours[8] = Mix(requests=120, latency_scale=1.8)
    # (Any other signal may wobble in the last window; the test follows latency.)
    seed(engine, hours)
    yield session_factory(engine)
    engine.dispose()


def test_a_drifted_window_fires_and_resolves_at_the_receiver(
    traffic: sessionmaker[Session], tmp_path: Path
) -> None:
    clock = Clock()
    job = DriftJob(
        kind="drift",
        name="drift-support",
        app="support",
        model="chat-default",
        upstream="vllm-a",
        window_h=1,
        frozen=FrozenReference(start=T0, end=T0 + 6 * HOUR),
    )
    with running_receiver() as receiver:
        services = Services(
            config=MonitorsConfig(reports_dir=str(tmp_path), alerts=AlertsConfig(cooldown_s=0)),
            sessions=traffic,
            clock=clock,
            alerts=AlertBook(traffic, clock=clock),
            notifier=Notifier(traffic, [WebhookSink("hook", receiver.url)], clock=clock),
            canary_client=_no_canaries,
            embedder=lambda: None,
            master_key=MASTER,
        )
        statuses = []
        for hour in (7, 8, 9, 10):  # windows ending at these hours: 6, 7, 8 (slow), 9
            clock.now = T0 + hour * HOUR
            statuses.append(run_job(services, job).exit_status)
            if hour == 8:
                assert receiver.bodies() == []  # two stable windows: nothing
        assert statuses[:3] == [EXIT_QUIET, EXIT_QUIET, EXIT_FIRING]
        _check(receiver, traffic)


def _check(receiver: Receiver, sessions: sessionmaker[Session]) -> None:
    bodies = receiver.bodies()
    assert {b["alert"]["details"]["signal"] for b in bodies if b["status"] == "firing"} >= {
        "latency_ms"
    }
    # The slow hour fired on latency (and nothing else); the next, normal hour resolved it.
    latency = [b for b in bodies if b["alert"]["details"]["signal"] == "latency_ms"]
    assert [b["status"] for b in latency] == ["firing", "resolved"]
    assert [b["alert"]["id"] for b in bodies[:2]] == [latency[0]["alert"]["id"]] * 2
    alert = latency[0]["alert"]
    assert alert["kind"] == "drift" and alert["subject"] == "support/chat-default/vllm-a"
    assert alert["details"]["signal"] == "latency_ms"
    assert alert["details"]["adjusted_p"] < 0.05
    assert alert["details"]["effect"] >= alert["details"]["threshold"]
    with sessions() as session:
        runs = session.scalars(select(MonitorRun).order_by(MonitorRun.id)).all()
        assert [r.status for r in runs[:3]] == ["ok", "ok", "alerting"]
        slow = runs[2]
        assert slow.report_path is not None and Path(slow.report_path).stat().st_size > 10_000
        assert slow.figures is not None and slow.figures["n_current"] == 120


def _no_canaries() -> object:
    raise AssertionError("a drift job asks no canaries")
