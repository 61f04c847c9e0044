"""``tollhouse principals ...`` and acting with ``$TOLLHOUSE_KEY``, as an operator would."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from governance.db import AuditRecord, make_engine, session_factory
from tollhouse.cli import main
from tollhouse.commands.context import KEY_VARIABLE

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "tollhouse.yaml"
    path.write_text(yaml.safe_dump({"database_url": database_url}))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def admin_records(database_url: str, principal: str) -> list[AuditRecord]:
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            rows = session.scalars(
                select(AuditRecord).where(AuditRecord.kind == "admin").order_by(AuditRecord.id)
            )
            return [r for r in rows if (r.decision or {}).get("principal") == principal]
    finally:
        engine.dispose()


def test_principals_lifecycle(
    config: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = ["--config", str(config)]
    tag = uuid.uuid4().hex[:6]
    bot, auditor = f"bot-{tag}", f"auditor-{tag}"
    code, out, _ = run(
        capsys, "principals", "create", bot, "--role", "app", "--app", "bot", "--team", "t", *cfg
    )
    assert code == 0 and out.startswith(f"created principal {bot} (")
    assert "roles app, app bot, team t" in out
    assert f"tollhouse keys create --principal {bot}" in out
    code, out, _ = run(
        capsys, "principals", "create", auditor, "--role", "auditor", "--role", "sre", *cfg
    )
    assert code == 0 and "roles auditor, sre" in out
    code, _, err = run(capsys, "principals", "create", auditor, "--role", "sre", *cfg)
    assert code == 2 and f"a principal named '{auditor}' exists already" in err
    code, _, err = run(capsys, "principals", "create", f"x-{tag}", "--role", "app", *cfg)
    assert code == 2 and "the app role needs an app name" in err
    with pytest.raises(SystemExit):
        main(["principals", "create", f"y-{tag}", "--role", "root", *cfg])
    assert "invalid choice: 'root'" in capsys.readouterr().err

    code, out, _ = run(capsys, "principals", "list", *cfg)
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:4] == ["name", "roles", "app", "team"]
    [row] = [line for line in lines if line.startswith(auditor)]
    assert "auditor, sre" in row and "active" in row

    code, out, _ = run(capsys, "principals", "roles", auditor, "--role", "auditor", *cfg)
    assert code == 0 and out.startswith(f"now principal {auditor}") and "roles auditor\n" in out
    code, out, _ = run(capsys, "principals", "disable", auditor, *cfg)
    assert code == 0 and "its keys stop working" in out
    code, out, _ = run(capsys, "principals", "list", *cfg)
    assert auditor not in out
    code, out, _ = run(capsys, "principals", "list", "--all", *cfg)
    assert "disabled" in next(line for line in out.splitlines() if line.startswith(auditor))
    code, _, err = run(capsys, "principals", "disable", f"nobody-{tag}", *cfg)
    assert code == 2 and "no principal named" in err

    records = admin_records(database_url, auditor)
    assert [r.endpoint for r in records] == [
        "principals.create",
        "principals.roles",
        "principals.disable",
    ]
    assert {(r.decision or {})["actor"] for r in records} == {f"local:{getpass.getuser()}"}
    assert {r.key_id for r in records} == {"local"}


def test_acting_with_a_key(
    tmp_path: Path,
    config: Path,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With $TOLLHOUSE_KEY set, commands act as that key's principal (here an admin, in a
    separate process) and their records name it; a bad key stops the command."""
    cfg = ["--config", str(config)]
    tag = uuid.uuid4().hex[:6]
    admin, target = f"admin-{tag}", f"target-{tag}"
    assert main(["principals", "create", admin, "--role", "admin", *cfg]) == 0
    assert main(["keys", "create", "--principal", admin, *cfg]) == 0
    created = capsys.readouterr().out.strip().splitlines()
    key, key_id = created[-1], created[-3].split()[2]  # "created key ID (prefix ...) ..."

    env = {**os.environ, "PYTHONPATH": str(ROOT), KEY_VARIABLE: key}
    env.pop("TOLLHOUSE_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "tollhouse", "principals", "create", target, "--role", "sre", *cfg],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    [record] = admin_records(database_url, target)
    assert (record.decision or {})["actor"] == admin
    assert record.key_id == key_id

    monkeypatch.setenv(KEY_VARIABLE, "th-00000000-not-a-key")
    code, _, err = run(capsys, "principals", "disable", target, *cfg)
    assert code == 2 and f"tollhouse: {KEY_VARIABLE}: the key is unknown" in err
    monkeypatch.setenv(KEY_VARIABLE, key)
    assert main(["principals", "disable", admin, *cfg]) == 0  # an admin may disable itself
    code, _, err = run(capsys, "principals", "disable", target, *cfg)
    assert code == 2 and "principal is disabled" in err
