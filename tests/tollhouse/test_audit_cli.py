"""`tollhouse audit verify`, `checkpoint create|export`, `purge` and `keygen` as an operator
runs them: exit codes, and a failure that names the record."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from governance.audit import AuditEntry, AuditWriter, RecordKind
from governance.db import make_engine
from tollhouse.cli import main


def entry(i: int) -> AuditEntry:
    return AuditEntry(
        request_id=f"req_cli_{i}",
        kind=RecordKind.COMPLETED,
        recorded_at=dt.datetime.now(dt.UTC),
        app="billing",
        team=None,
        key_id="k",
        endpoint="chat.completions",
        status="ok",
        content_retention="none",
        input_tokens=i,
    )


@pytest.fixture
def config(fresh_database_url: str, tmp_path: Path, audit_keys: dict[str, str]) -> Path:
    engine = make_engine(fresh_database_url)
    writer = AuditWriter(engine)
    writer.start()
    writer.write_blocking([entry(i) for i in range(8)], timeout_s=10)
    writer.close()
    engine.dispose()
    path = tmp_path / "tollhouse.yaml"
    path.write_text(yaml.safe_dump({"database_url": fresh_database_url, "audit": audit_keys}))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    printed = capsys.readouterr()
    return code, printed.out, printed.err


def test_verify_passes_then_names_the_tampered_record(
    config: Path, fresh_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "audit", "checkpoint", "create", "--config", str(config))
    assert code == 0 and "checkpoint #1 signs 1 chain heads" in out
    code, out, _ = run(capsys, "audit", "verify", "--config", str(config))
    assert code == 0 and "OK: every chain and checkpoint verifies" in out
    engine = make_engine(fresh_database_url)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE audit_records SET input_tokens = 0 WHERE request_id = 'req_cli_3'")
        )
    engine.dispose()
    code, _, err = run(capsys, "audit", "verify", "--config", str(config))
    assert code == 1
    first = err.splitlines()[0]
    assert "first bad record" in first and "seq 4" in first and "req_cli_3" in first
    assert "[record_hash]" in first


def test_an_exported_anchor_catches_deleted_checkpoints(
    config: Path, fresh_database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "audit", "checkpoint", "create", "--config", str(config))[0] == 0
    anchor = tmp_path / "anchor.jsonl"
    code, out, _ = run(
        capsys, "audit", "checkpoint", "export", "-o", str(anchor), "--config", str(config)
    )
    assert code == 0 and "exported 1 checkpoints" in out
    args = ("audit", "verify", "--anchor", str(anchor), "--config", str(config))
    assert run(capsys, *args)[0] == 0
    engine = make_engine(fresh_database_url)
    with engine.begin() as connection:  # without the anchor, this would go unnoticed
        connection.execute(text("DELETE FROM audit_checkpoints"))
        connection.execute(text("UPDATE audit_chains SET signed_seq = 0"))
    engine.dispose()
    assert run(capsys, "audit", "verify", "--config", str(config))[0] == 0
    code, _, err = run(capsys, *args)
    assert code == 1 and "[anchor]" in err


def test_purge_keeps_the_trail_verifiable_and_keygen_refuses_to_overwrite(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "audit", "purge", "--older-than", "1d", "--config", str(config))
    assert code == 0 and "purged the content of 0 records" in out
    assert run(capsys, "audit", "verify", "--config", str(config))[0] == 0
    key = tmp_path / "new.pem"
    assert run(capsys, "audit", "keygen", "--signing-key", str(key))[0] == 0
    assert key.stat().st_mode & 0o777 == 0o600 and (tmp_path / "new.pem.pub").exists()
    code, _, err = run(capsys, "audit", "keygen", "--signing-key", str(key))
    assert code == 2 and "refusing to overwrite" in err
