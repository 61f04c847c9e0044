"""The command line, run as a user would: a real process with a real config file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from governance.db import AuditRecord, make_engine, session_factory
from tollhouse.cli import main

ROOT = Path(__file__).resolve().parents[2]


def tollhouse(
    *args: str, cwd: Path, timeout: float = 120, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TOLLHOUSE_CONFIG", None)
    env.pop("TOLLHOUSE_KEY", None)
    if key is not None:
        env["TOLLHOUSE_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "tollhouse", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "tollhouse.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database_url": database_url,
                "upstreams": [
                    {"name": "u", "base_url": "http://127.0.0.1:9/v1", "destination": "internal"}
                ],
                "models": [{"name": "m", "deployments": [{"upstream": "u", "model": "x"}]}],
            }
        )
    )
    return path


def test_keys_lifecycle(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = ["--config", str(config)]
    assert main(["db", "upgrade", *cfg]) == 0
    app = f"search-{uuid.uuid4().hex[:6]}"
    assert main(["keys", "create", "--app", app, "--team", "web", *cfg]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    secret = out[-1]
    assert secret.startswith("th-") and " " not in secret  # alone on the last line
    assert f"for principal {app} (app {app}, team web)" in out[-3]
    assert main(["keys", "list", *cfg]) == 0
    listing = capsys.readouterr().out
    prefix = "-".join(secret.split("-")[:2])
    assert prefix in listing and app in listing and secret not in listing
    assert main(["keys", "revoke", prefix, *cfg]) == 0
    assert f"({prefix}) of principal {app}" in capsys.readouterr().out
    assert main(["keys", "list", *cfg]) == 0
    assert prefix not in capsys.readouterr().out
    assert main(["keys", "list", "--all", "--principal", app, *cfg]) == 0
    assert "revoked" in capsys.readouterr().out.splitlines()[-1]
    assert main(["keys", "revoke", "th-unknown", *cfg]) == 2
    assert "no key" in capsys.readouterr().err


def test_keys_expire_and_rotate(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = ["--config", str(config)]
    assert main(["db", "upgrade", *cfg]) == 0
    name = f"ops-{uuid.uuid4().hex[:6]}"
    assert main(["principals", "create", name, "--role", "sre", *cfg]) == 0
    assert main(["keys", "create", "--principal", name, "--expires-in", "90d", *cfg]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    old = out[-1]
    old_prefix = "-".join(old.split("-")[:2])
    assert ", expires " in out[-3] and f"principal {name}" in out[-3]

    assert main(["keys", "rotate", old_prefix, "--overlap", "24h", *cfg]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    new = out[-1]
    new_prefix = "-".join(new.split("-")[:2])
    assert new.startswith("th-") and new != old and old not in "\n".join(out)
    assert out[0].startswith("key ") and f"({old_prefix}) keeps working until " in out[0]
    assert main(["keys", "list", "--principal", name, *cfg]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert len(rows) == 2 and old_prefix in rows[0] and "replaced by" in rows[0]
    assert new_prefix in rows[1] and "expires" in rows[1]
    code = main(["keys", "rotate", old_prefix, "--overlap", "1h", *cfg])
    assert code == 2 and "already rotated" in capsys.readouterr().err

    code = main(["keys", "create", "--principal", name, "--team", "x", *cfg])
    assert code == 2 and "--team goes with --app" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["keys", "rotate", new_prefix, "--overlap", "a while", *cfg])
    assert "not a duration" in capsys.readouterr().err


def test_bad_config_exits_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("upstreams:\n  - {name: u, base_url: nope, destination: internal}\n")
    result = tollhouse("keys", "list", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert str(path) in result.stderr and "upstreams[0].base_url" in result.stderr


def test_unmigrated_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(f"database_url: sqlite:///{tmp_path}/empty.db\n")
    result = tollhouse("serve", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2 and "tollhouse db upgrade" in result.stderr


def test_demo_runs_traffic_and_exports(tmp_path: Path) -> None:
    result = tollhouse("demo", "--no-wait", "--port", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "a demo model, not a real LLM" in out
    assert "chat-default   10        9" in out and "embed-default  2         2" in out
    # The example policy at work: pseudonyms out, sensitive requests in, cards refused.
    assert "refused (pii_blocked)" in out
    assert "Maria Jansen (maria.jansen@example.com)" in out  # restored in the answer
    decisions = out.split("Policy decisions")[1].split("Spend by model")[0]
    assert "PERSON:pseudonymize" in decisions
    assert decisions.count("route   chat-internal  internal") == 2
    assert "curl -s http://127.0.0.1:" in out
    assert "hash chains, checkpoint #1 signed; every chain verifies" in out
    # One person runs the demo: publishing approves (four eyes is off), and it says so.
    assert "approved by local:" in out and "access.four_eyes: false" in out
    engine = make_engine(f"sqlite:///{tmp_path / '.tollhouse' / 'demo.db'}")
    with session_factory(engine)() as session:
        stored = list(session.execute(select(AuditRecord.kind, AuditRecord.endpoint)))
    engine.dispose()
    kinds = [kind for kind, _ in stored]
    assert kinds.count("admitted") == kinds.count("completed") == 12
    admin = [endpoint for kind, endpoint in stored if kind == "admin"]
    assert sorted(admin) == [
        "keys.create",
        "policy.activate",
        "policy.approve",
        "policy.publish",
        "prices.load",
        "principals.create",
    ]
    config = tmp_path / ".tollhouse" / "demo.yaml"
    verified = tollhouse("audit", "verify", "--config", str(config), cwd=tmp_path)
    assert verified.returncode == 0 and "OK: every chain" in verified.stdout, verified.stderr
    # Exporting needs an auditor's key: the local operator creates one.
    created = tollhouse(
        "principals",
        "create",
        "demo-auditor",
        "--role",
        "auditor",
        "--config",
        str(config),
        cwd=tmp_path,
    )
    assert created.returncode == 0, created.stderr
    key = (
        tollhouse(
            "keys", "create", "--principal", "demo-auditor", "--config", str(config), cwd=tmp_path
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    out = tmp_path / "trail.jsonl"
    refused = tollhouse("audit", "export", "-o", str(out), "--config", str(config), cwd=tmp_path)
    assert refused.returncode == 2 and "TOLLHOUSE_KEY" in refused.stderr
    exported = tollhouse(
        "audit", "export", "-o", str(out), "--config", str(config), cwd=tmp_path, key=key
    )
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    kinds = [r["kind"] for r in records]
    # 12 requests, plus eight admin records: loading the prices, publishing, approving (on
    # publication) and activating the policy, creating the demo app's principal and its
    # key, then the auditor's principal and key.
    assert kinds.count("admitted") == kinds.count("completed") == 12
    assert kinds.count("admin") == 8 and len(records) == 32
    manifest = json.loads((tmp_path / "trail.jsonl.manifest.json").read_text())
    assert manifest["count"] == 32 and "exported 32 records" in exported.stdout
    since = tollhouse(
        "audit",
        "export",
        "--from",
        "2999-01-01",
        "-o",
        str(tmp_path / "none.jsonl"),
        "--config",
        str(config),
        cwd=tmp_path,
        key=key,
    )
    assert since.returncode == 0 and (tmp_path / "none.jsonl").read_text() == ""
    tail = tollhouse("audit", "tail", "-n", "3", "--config", str(config), cwd=tmp_path)
    assert tail.returncode == 0 and tail.stdout.count("chat-default") == 3
    assert "rejected" in tail.stdout.splitlines()[-1]  # the refused card number, last
    assert tail.stdout.splitlines()[0].startswith("time (UTC)")


def test_demo_curl_example_works(tmp_path: Path) -> None:
    """The printed example is a working request (sent here with urllib, as curl would),
    and the dashboard runs at the printed address."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tollhouse", "demo", "--port", "0", "--dashboard-port", "0"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "press Ctrl-C" in line:
                break
        text = "".join(lines)
        url = text.split("curl -s ")[1].split(" ")[0]
        key = text.split("Authorization: Bearer ")[1].split("'")[0]
        request = urllib.request.Request(
            url,
            data=b'{"model": "chat-default", "messages": [{"role": "user", "content": "Hello"}]}',
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["choices"][0]["message"]["content"].endswith("You said: Hello")
        dashboard = text.split("Dashboard:   ")[1].split(" ")[0]
        assert text.split("sign in with the key ")[1].startswith("th-")
        assert _eventually_ok(f"{dashboard}/_stcore/health", timeout_s=60)
    finally:
        process.terminate()
        process.wait(20)
    # Stopping the demo stops its dashboard: no Streamlit process outlives it.
    assert _eventually_gone(f"{dashboard}/_stcore/health", timeout_s=15)


def _eventually_gone(url: str, timeout_s: float) -> bool:
    """Whether ``url`` stops answering within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                time.sleep(0.2)
        except OSError:
            return True
    return False


def _eventually_ok(url: str, timeout_s: float) -> bool:
    """Whether ``url`` answers 200 within ``timeout_s`` (a server still starting refuses)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False
