"""Alert sinks: a generic JSON webhook, Slack-compatible incoming webhooks, and
Prometheus Alertmanager's v2 API.

Delivery is at least once: an alert is marked notified only when every sink that wants it
accepted it, and a failed delivery is tried again on the next pass. Receivers can drop
repeats by ``delivery_id`` (webhook) or rely on Alertmanager's own deduplication by labels.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from governance.config.monitors import SinkConfig
from governance.db import AlertRecord
from governance.errors import ConfigError
from monitors.alerts import SEVERITY_RANK

State = Literal["firing", "resolved"]
USER_AGENT = "tollhouse-monitors/1"


@dataclass(frozen=True)
class AlertMessage:
    """An alert as the sinks see it: its row plus the state being announced."""

    id: int
    state: State
    kind: str
    severity: str
    subject: str
    summary: str
    condition: str
    job: str | None
    details: dict[str, Any]
    raised_at: dt.datetime
    resolved_at: dt.datetime | None
    occurrences: int

    @classmethod
    def of(cls, alert: AlertRecord) -> AlertMessage:
        return cls(
            id=alert.id,
            state="resolved" if alert.resolved_at is not None else "firing",
            kind=alert.kind,
            severity=alert.severity,
            subject=alert.subject,
            summary=alert.summary,
            condition=alert.condition or alert.dedupe_key,
            job=alert.job,
            details={k: v for k, v in (alert.details or {}).items() if k != "event"},
            raised_at=alert.raised_at,
            resolved_at=alert.resolved_at,
            occurrences=alert.occurrences,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.state,
            "kind": self.kind,
            "severity": self.severity,
            "subject": self.subject,
            "summary": self.summary,
            "condition": self.condition,
            "job": self.job,
            "details": self.details,
            "raised_at": self.raised_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "occurrences": self.occurrences,
        }


class DeliveryError(Exception):
    """A sink did not accept a message (after its retries)."""


class Sink(Protocol):
    name: str
    min_severity: str
    # Sinks that forget firing alerts unless reminded (Alertmanager) get open alerts again
    # on every pass.
    refresh_open: bool

    def send(self, messages: Sequence[AlertMessage]) -> None: ...


def _post_json(
    url: str, body: Any, *, timeout_s: float, retries: int, sleep: Callable[[float], None]
) -> None:
    data = json.dumps(body, default=str).encode("utf-8")
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
        request = urllib.request.Request(  # noqa: S310 (the URL is operator config)
            url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
                response.read()
                return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                break  # the receiver rejects the message itself; retrying cannot help
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    raise DeliveryError(f"{_redacted(url)}: {last}")


def _redacted(url: str) -> str:
    """A URL fit for a log line: scheme and host only (webhook paths carry secrets)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}/..."


class _HttpSink:
    refresh_open = False

    def __init__(
        self,
        name: str,
        url: str,
        *,
        min_severity: str = "info",
        timeout_s: float = 5.0,
        retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.url = url
        self.min_severity = min_severity
        self._timeout_s = timeout_s
        self._retries = retries
        self._sleep = sleep

    def send(self, messages: Sequence[AlertMessage]) -> None:
        raise NotImplementedError

    def _post(self, body: Any, url: str | None = None) -> None:
        _post_json(
            url or self.url,
            body,
            timeout_s=self._timeout_s,
            retries=self._retries,
            sleep=self._sleep,
        )


class WebhookSink(_HttpSink):
    """One POST per alert: ``{"version": "1", "delivery_id", "status", "alert": {...}}``."""

    def send(self, messages: Sequence[AlertMessage]) -> None:
        for message in messages:
            self._post(
                {
                    "version": "1",
                    "source": "tollhouse",
                    "delivery_id": f"{message.id}:{message.state}:{message.occurrences}",
                    "status": message.state,
                    "alert": message.as_json(),
                }
            )


_SLACK_ICON = {
    "critical": ":rotating_light:",
    "warning": ":warning:",
    "info": ":information_source:",
}


class SlackSink(_HttpSink):
    """Slack-compatible incoming webhooks (Slack, Mattermost, Rocket.Chat): ``{"text"}``."""

    def send(self, messages: Sequence[AlertMessage]) -> None:
        for message in messages:
            if message.state == "resolved":
                head = f":white_check_mark: RESOLVED {message.summary}"
            else:
                icon = _SLACK_ICON.get(message.severity, "")
                head = f"{icon} {message.severity.upper()} {message.summary}"
            lines = [head, f"subject: `{message.subject}` · job: `{message.job or '-'}`"]
            lines.append(f"alert #{message.id}, raised {message.raised_at:%Y-%m-%d %H:%M} UTC")
            self._post({"text": "\n".join(lines)})


class AlertmanagerSink(_HttpSink):
    """Prometheus Alertmanager v2: ``POST /api/v2/alerts`` with a list of alerts. A
    resolved alert carries ``endsAt``; open alerts are re-sent on every pass because
    Alertmanager resolves an alert it has not heard about for ``resolve_timeout``."""

    refresh_open = True

    def send(self, messages: Sequence[AlertMessage]) -> None:
        if not messages:
            return
        url = self.url.rstrip("/")
        if not url.endswith("/api/v2/alerts"):
            url += "/api/v2/alerts"
        self._post([_alertmanager_alert(m) for m in messages], url)


def _alertmanager_alert(message: AlertMessage) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "labels": {
            "alertname": "Tollhouse_" + "".join(p.capitalize() for p in message.kind.split(".")),
            "severity": message.severity,
            "subject": message.subject,
            "condition": message.condition,
            "job": message.job or "",
            "service": "tollhouse",
        },
        "annotations": {
            "summary": message.summary,
            "description": json.dumps(message.details, default=str, sort_keys=True)[:4000],
            "tollhouse_alert_id": str(message.id),
        },
        "startsAt": message.raised_at.isoformat(),
    }
    if message.resolved_at is not None:
        alert["endsAt"] = message.resolved_at.isoformat()
    return alert


def build_sinks(configs: Sequence[SinkConfig], secrets: dict[str, str]) -> list[Sink]:
    """The configured sinks; an ``url_env`` that is not set is a configuration error."""
    kinds: dict[str, type[_HttpSink]] = {
        "webhook": WebhookSink,
        "slack": SlackSink,
        "alertmanager": AlertmanagerSink,
    }
    sinks: list[Sink] = []
    for i, config in enumerate(configs):
        url = config.url
        if config.url_env is not None:
            url = secrets.get(config.url_env)
            if not url:
                raise ConfigError(
                    f"monitors.alerts.sinks[{i}].url_env: environment variable "
                    f"{config.url_env} is not set"
                )
        assert url is not None
        sinks.append(
            kinds[config.kind](
                f"{config.kind}[{i}]",
                url,
                min_severity=config.min_severity,
                timeout_s=config.timeout_s,
                retries=config.retries,
            )
        )
    return sinks


@dataclass
class Delivery:
    delivered: int = 0
    failed: list[str] | None = None


class Notifier:
    """Tells the sinks about every alert whose announced state is behind its real one."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        sinks: Sequence[Sink],
        *,
        clock: Callable[[], dt.datetime],
        repeat: dt.timedelta = dt.timedelta(0),
        max_age: dt.timedelta = dt.timedelta(days=1),
    ) -> None:
        self._sessions = sessions
        self._sinks = list(sinks)
        self._clock = clock
        self._repeat = repeat
        self._max_age = max_age

    def deliver(self) -> Delivery:
        """Announce pending alerts (and, to sinks that need it, open ones again)."""
        now = self._clock()
        result = Delivery(failed=[])
        with self._sessions.begin() as session:
            pending = self._pending(session, now)
            if not self._sinks:
                return result
            refresh = [
                AlertMessage.of(a)
                for a in session.scalars(
                    select(AlertRecord).where(AlertRecord.resolved_at.is_(None))
                )
                if a not in pending
            ]
            messages = [AlertMessage.of(a) for a in pending]
            failed_ids: set[int] = set()
            for sink in self._sinks:
                wanted = [m for m in messages if _wants(sink, m)]
                if sink.refresh_open:
                    wanted += [m for m in refresh if _wants(sink, m)]
                if not wanted:
                    continue
                try:
                    sink.send(wanted)
                except DeliveryError as exc:
                    assert result.failed is not None
                    result.failed.append(f"{sink.name}: {exc}")
                    failed_ids.update(m.id for m in wanted)
            for alert in pending:
                if alert.id in failed_ids:
                    continue
                alert.notified_state = "resolved" if alert.resolved_at else "firing"
                alert.notified_at = now
                result.delivered += 1
        return result

    def _pending(self, session: Session, now: dt.datetime) -> list[AlertRecord]:
        """Alerts whose sinks have not heard their current state: new ones (no older
        than ``max_age``, so turning sinks on does not replay history), resolved ones that
        were announced firing, and firing ones due for a repeat. (A resolved alert never
        reopens: a later episode is a new row.)"""
        query = select(AlertRecord).where(
            or_(
                (AlertRecord.notified_state.is_(None))
                & (AlertRecord.raised_at >= now - self._max_age),
                (AlertRecord.notified_state == "firing") & AlertRecord.resolved_at.is_not(None),
            )
        )
        pending = list(session.scalars(query.order_by(AlertRecord.id)))
        if self._repeat > dt.timedelta(0):
            seen = {a.id for a in pending}
            due = session.scalars(
                select(AlertRecord).where(
                    AlertRecord.notified_state == "firing",
                    AlertRecord.resolved_at.is_(None),
                    AlertRecord.acknowledged_at.is_(None),
                    AlertRecord.notified_at < now - self._repeat,
                )
            )
            pending += [a for a in due if a.id not in seen]
        return pending


def _wants(sink: Sink, message: AlertMessage) -> bool:
    return SEVERITY_RANK.get(message.severity, 0) >= SEVERITY_RANK.get(sink.min_severity, 0)
