"""A dashboard's world for tests: a configuration file, a migrated database seeded with
synthetic traffic through the real writer, a published policy with budgets, monitor runs
with an Evidently-style report file, an alert, model fingerprints, a signed checkpoint,
and one key per role."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from sqlalchemy import Engine

from governance.access import Principal, Role
from governance.access.principals import PrincipalService
from governance.audit.checkpoint import Checkpointer, load_signing_key
from governance.db import make_engine, session_factory
from governance.keys import KeyService
from monitors.alerts import AlertBook, Finding
from monitors.fingerprints import watch_fingerprints
from monitors.runs import RunLog
from tests.support import traffic
from tests.support.policies import activate

OPERATOR = Principal.operator("tests-dashboard")
ROLES = ("admin", "auditor", "sre", "finance", "policy_author")
POLICY = {
    "name": "default",
    "defaults": {
        "audit": {"content": "redacted"},
        "budgets": [
            {
                "name": "app-monthly",
                "scope": "app",
                "period": "monthly",
                "cost": "5",
                "alert_at": 0.5,
            },
            {"name": "user-daily", "scope": "end_user", "period": "daily", "tokens": 200000},
        ],
    },
}
SIGNAL_FIGURES = {
    "subject": "support-bot/chat-default/vllm-a",
    "status": "drifted",
    "signals": [
        {
            "name": "completion_tokens",
            "kind": "numeric",
            "p_value": 0.0001,
            "adjusted_p": 0.001,
            "effect": 0.4,
            "threshold": 0.1,
            "drifted": True,
        },
        {
            "name": "latency_ms",
            "kind": "numeric",
            "p_value": 0.5,
            "adjusted_p": 1.0,
            "effect": 0.02,
            "threshold": 0.1,
            "drifted": False,
        },
    ],
}


@dataclass
class Site:
    url: str
    config: Path
    keys: dict[str, str] = field(default_factory=dict)
    requests: int = 0


def write_config(directory: Path, url: str, audit_keys: dict[str, str]) -> Path:
    raw = {
        "database_url": url,
        "upstreams": [
            {"name": "vllm-a", "base_url": "http://127.0.0.1:9/v1", "destination": "internal"},
            {"name": "vllm-b", "base_url": "http://127.0.0.1:9/v1", "destination": "internal"},
            {"name": "openai", "base_url": "http://127.0.0.1:9/v1", "destination": "external"},
        ],
        "models": [
            {
                "name": "chat-default",
                "deployments": [
                    {"upstream": "vllm-a", "model": "llama-3.1-8b"},
                    {"upstream": "openai", "model": "gpt-4o-mini"},
                ],
            },
            {
                "name": "chat-large",
                "deployments": [{"upstream": "vllm-b", "model": "llama-3.1-70b"}],
            },
        ],
        "audit": audit_keys,
        "monitors": {"reports_dir": str(directory / "reports")},
    }
    path = directory / "tollhouse.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def make_keys(url: str) -> dict[str, str]:
    engine = make_engine(url)
    sessions = session_factory(engine)
    people = PrincipalService(sessions)
    keys = KeyService(sessions)
    found = {}
    for role in ROLES:
        people.create(f"{role}@example.test", [Role(role)], actor=OPERATOR)
        found[role] = keys.create(f"{role}@example.test", actor=OPERATOR).secret
    found["app"] = keys.create_for_app("support-bot", "customer-care", actor=OPERATOR).secret
    engine.dispose()
    return found


def seed(url: str, directory: Path, audit_keys: dict[str, str], n: int = 300) -> Site:
    """Everything the pages show, ``n`` requests over the last ten days."""
    config = write_config(directory, url, audit_keys)
    site = Site(url, config, make_keys(url), n)
    engine = make_engine(url)
    sessions = session_factory(engine)
    now = dt.datetime.now(dt.UTC)
    activate(sessions, POLICY)
    traffic.write(
        engine, traffic.requests(n, now - dt.timedelta(days=10), now - dt.timedelta(minutes=5))
    )
    _monitors(engine, directory, now)
    Checkpointer(engine, load_signing_key(audit_keys["signing_key_file"])).write()
    engine.dispose()
    return site


def _monitors(engine: Engine, directory: Path, now: dt.datetime) -> None:
    sessions = session_factory(engine)
    report = directory / "reports" / "drift-support" / "run.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("<html><body><h1>Evidently drift report (test)</h1></body></html>")
    for hours_ago in (48, 24, 1):
        at = now - dt.timedelta(hours=hours_ago)
        runs = RunLog(sessions, lambda at=at: at)
        run_id = runs.start("drift-support", "drift", SIGNAL_FIGURES["subject"])
        runs.finish(run_id, "alerting", SIGNAL_FIGURES, report_path=str(report))
    book = AlertBook(sessions, clock=lambda: now)
    book.reconcile(
        "drift-support",
        SIGNAL_FIGURES["subject"],
        [
            Finding(
                condition="drift:support-bot/chat-default/vllm-a:completion_tokens",
                kind="drift",
                severity="warning",
                subject=SIGNAL_FIGURES["subject"],
                summary="completion_tokens drifted (effect 0.40 >= 0.10)",
            )
        ],
    )
    watch_fingerprints(sessions, job="fingerprints", clock=lambda: now)
