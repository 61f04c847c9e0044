"""Two proxy processes sharing one database pick up activations, rollbacks and shadows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import migrations
from governance.access import Principal
from governance.db import make_engine, session_factory
from governance.keys import KeyService
from governance.policy.schema import Policy
from governance.policy.store import PolicyStore
from tests.support.pg import wait_until
from tests.upstream.faulty import FaultyUpstream
from tollhouse.cli import main
from tollhouse.demo.model_server import free_port

V1: dict[str, Any] = {"name": "shared", "defaults": {"content": {"secrets": "off"}}}
V2: dict[str, Any] = {
    "name": "shared",
    "defaults": {"content": {"secrets": "off", "blocked_keywords": ["zebra"]}},
}


def _post(url: str, key: str, text: str) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"model": "chat", "messages": [{"role": "user", "content": text}]})
    request = urllib.request.Request(
        f"{url}/v1/chat/completions",
        data=body.encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def two_proxies(tmp_path: Path) -> Iterator[tuple[list[str], str, str]]:
    upstream = FaultyUpstream("up").start()
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    migrations.upgrade(url)
    config = {
        "database_url": url,
        "upstreams": [{"name": "up", "base_url": upstream.url, "destination": "internal"}],
        "models": [{"name": "chat", "deployments": [{"upstream": "up", "model": "demo-llama"}]}],
        "policy": {"name": "shared", "reload_interval_s": 0.5},
        "pii": {"preload": False},
    }
    config_path = tmp_path / "tollhouse.yaml"
    config_path.write_text(yaml.safe_dump(config))
    engine = make_engine(url)
    store = PolicyStore(session_factory(engine))
    author, approver = Principal.operator("tests-author"), Principal.operator("tests-approver")
    for doc in (V1, V2):
        version = store.publish(Policy.model_validate(doc), yaml.safe_dump(doc), author)
        store.approve(version.name, version.version, approver)  # four eyes
    store.activate("shared", 1, approver)
    key = KeyService(session_factory(engine)).create_for_app("web", actor=approver).secret
    engine.dispose()
    ports = [free_port(), free_port()]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tollhouse",
                "serve",
                "--config",
                str(config_path),
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for proxy_url in urls:
            wait_until(lambda u=proxy_url: _ready(u), 60)
        yield urls, key, str(config_path)
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        assert upstream.server is not None
        upstream.server.stop()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _switch_time(urls: list[str], key: str, refused: bool) -> float:
    """Seconds until every process refuses (or accepts) the keyword."""
    started = time.monotonic()
    pending = set(urls)
    while pending:
        assert time.monotonic() - started < 10, f"{pending} did not switch"
        for url in list(pending):
            status, _ = _post(url, key, "a zebra walks in")
            if (status == 400) == refused:
                pending.discard(url)
        time.sleep(0.05)
    return time.monotonic() - started


def test_activation_rollback_and_shadow_reach_every_process(
    two_proxies: tuple[list[str], str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    urls, key, config = two_proxies
    for url in urls:
        assert _post(url, key, "a zebra walks in")[0] == 200

    assert main(["policy", "activate", "shared@2", "--config", config]) == 0
    assert _switch_time(urls, key, refused=True) < 5
    status, body = _post(urls[0], key, "a zebra walks in")
    assert status == 400 and body["error"]["code"] == "content_blocked"

    assert main(["policy", "rollback", "shared", "--config", config]) == 0
    assert _switch_time(urls, key, refused=False) < 5

    # Shadow: v2 is evaluated on live traffic and recorded, never enforced.
    assert main(["policy", "shadow", "shared@2", "--config", config]) == 0
    time.sleep(1.5)
    for url in urls:
        assert _post(url, key, "a zebra walks in")[0] == 200
        assert _post(url, key, "a horse walks in")[0] == 200
    capsys.readouterr()
    assert main(["policy", "shadow-report", "shared", "--config", config]) == 0
    report = capsys.readouterr().out
    assert "evaluated 4, would change 2" in report

    engine = make_engine(f"sqlite:///{Path(config).parent / 'shared.db'}")
    from sqlalchemy import select

    from governance.db import AuditRecord

    with session_factory(engine)() as session:
        rows = list(session.scalars(select(AuditRecord).where(AuditRecord.app == "web")))
    engine.dispose()
    assert rows and all(r.policy_name == "shared" and r.policy_version for r in rows)
    assert {r.policy_version for r in rows} == {1, 2}
    shadowed = [r for r in rows if r.kind == "admitted" and r.shadow]
    assert len(shadowed) >= 4
    assert {r.shadow["action"] for r in shadowed} == {"allow", "block"}
