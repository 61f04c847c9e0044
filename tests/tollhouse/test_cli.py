"""The command line, run as a user would: a real process with a real config file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from tollhouse.cli import main

ROOT = Path(__file__).resolve().parents[2]


def tollhouse(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TOLLHOUSE_CONFIG", None)
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
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert (
        main(["keys", "create", "--app", "search", "--team", "web", "--config", str(config)]) == 0
    )
    out = capsys.readouterr().out.strip().splitlines()
    secret = out[-1]
    assert secret.startswith("th-") and " " not in secret  # alone on the last line
    assert main(["keys", "list", "--config", str(config)]) == 0
    listing = capsys.readouterr().out
    prefix = "-".join(secret.split("-")[:2])
    assert prefix in listing and "search" in listing and secret not in listing
    assert main(["keys", "revoke", prefix, "--config", str(config)]) == 0
    assert f"({prefix})" in capsys.readouterr().out
    assert main(["keys", "list", "--config", str(config)]) == 0
    assert prefix not in capsys.readouterr().out
    assert main(["keys", "revoke", "th-unknown", "--config", str(config)]) == 2
    assert "no key" in capsys.readouterr().err


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
    config = tmp_path / ".tollhouse" / "demo.yaml"
    exported = tollhouse(
        "audit", "export", "--format", "jsonl", "--config", str(config), cwd=tmp_path
    )
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    kinds = [r["kind"] for r in records]
    # 12 requests, plus publishing and activating the policy (admin records).
    assert kinds.count("admitted") == kinds.count("completed") == 12
    assert kinds.count("admin") == 2 and len(records) == 26
    assert "exported 26 records" in exported.stderr
    since = tollhouse(
        "audit", "export", "--since", "2999-01-01", "--config", str(config), cwd=tmp_path
    )
    assert since.stdout == ""
    tail = tollhouse("audit", "tail", "-n", "3", "--config", str(config), cwd=tmp_path)
    assert tail.returncode == 0 and tail.stdout.count("chat-default") == 3
    assert "rejected" in tail.stdout.splitlines()[-1]  # the refused card number, last
    assert tail.stdout.splitlines()[0].startswith("time (UTC)")


def test_demo_curl_example_works(tmp_path: Path) -> None:
    """The printed example is a working request (sent here with urllib, as curl would)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tollhouse", "demo", "--port", "0"],
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
    finally:
        process.terminate()
        process.wait(20)
