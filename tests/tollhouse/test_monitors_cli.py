"""``tollhouse monitors`` as cron and an SRE use it: exit statuses, listings, clear errors
for unknown jobs and missing secrets, and the permission checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.receiver import Receiver, running_receiver
from tollhouse.cli import main
from tollhouse.commands.context import KEY_VARIABLE


@pytest.fixture
def receiver() -> Receiver:
    with running_receiver() as r:
        yield r


@pytest.fixture
def config(fresh_database_url: str, tmp_path: Path, receiver: Receiver) -> Path:
    path = tmp_path / "tollhouse.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database_url": fresh_database_url,
                "monitors": {
                    "reports_dir": str(tmp_path / "reports"),
                    "proxy_url": "http://127.0.0.1:9/v1",
                    "canary_key_env": "TEST_CANARY_KEY_UNSET",
                    "alerts": {"sinks": [{"kind": "webhook", "url_env": "TEST_HOOK_URL"}]},
                    "jobs": [
                        {"name": "fingerprints", "kind": "fingerprints", "interval_s": 60},
                        {"name": "canary-mini", "kind": "canary", "model": "mini"},
                    ],
                },
            }
        )
    )
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    printed = capsys.readouterr()
    return code, printed.out, printed.err


def test_run_list_and_errors(
    config: Path,
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = ["--config", str(config)]
    code, _, err = run(capsys, "monitors", "run", "fingerprints", *cfg)
    assert code == 2 and "TEST_HOOK_URL is not set" in err

    monkeypatch.setenv("TEST_HOOK_URL", f"{receiver.url}/hook")
    code, out, err = run(capsys, "monitors", "run", "fingerprints", *cfg)
    assert code == 0, err
    assert "fingerprints: run 1 (all upstreams): ok" in out
    assert "0 alert(s) firing" in out and "0 new records" in err

    code, out, _ = run(capsys, "monitors", "list", *cfg)
    assert code == 0 and "fingerprints" in out and "ok at" in out and "never" in out

    # A canary job without its key: the run fails (exit 1), is stored as failed, and says why.
    code, out, _ = run(capsys, "monitors", "run", "canary-mini", "--quiet", *cfg)
    assert code == 1 and "TEST_CANARY_KEY_UNSET is not set" in out
    code, out, _ = run(capsys, "monitors", "runs", *cfg)
    assert code == 0 and "canary-mini" in out and "failed" in out

    code, _, err = run(capsys, "monitors", "run", "nope", *cfg)
    assert code == 2 and "no monitor job 'nope'" in err and "fingerprints" in err
    code, _, err = run(capsys, "monitors", "rebaseline", "fingerprints", *cfg)
    assert code == 2 and "only canary jobs have a baseline" in err
    code, out, _ = run(capsys, "monitors", "rebaseline", "canary-mini", *cfg)
    assert code == 0 and "no baseline yet" in out
    code, _, err = run(capsys, "monitors", "ack", "12345", *cfg)
    assert code == 2 and "no alert 12345" in err
    code, out, _ = run(capsys, "monitors", "alerts", "--all", *cfg)
    assert code == 0 and "(none)" in out
    assert receiver.bodies() == []


def test_reading_needs_ops_read_and_acting_needs_monitors_manage(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = ["--config", str(config)]
    keys = {}
    for name, role in (("ops", "sre"), ("books", "auditor")):
        assert main(["principals", "create", name, "--role", role, *cfg]) == 0
        assert main(["keys", "create", "--principal", name, *cfg]) == 0
        keys[name] = capsys.readouterr().out.strip().splitlines()[-1]
    monkeypatch.setenv("TEST_HOOK_URL", "http://127.0.0.1:9/hook")
    monkeypatch.setenv(KEY_VARIABLE, keys["books"])
    code, _, err = run(capsys, "monitors", "alerts", *cfg)
    assert code == 2 and "books (roles: auditor) may not ops:read" in err
    code, _, err = run(capsys, "monitors", "run", "fingerprints", *cfg)
    assert code == 2 and "may not monitors:manage" in err
    monkeypatch.setenv(KEY_VARIABLE, keys["ops"])
    assert run(capsys, "monitors", "alerts", *cfg)[0] == 0
    assert run(capsys, "monitors", "run", "fingerprints", "--quiet", *cfg)[0] == 0
