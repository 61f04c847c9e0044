"""Sign-in resolution, the read-only engine, and the `tollhouse dashboard` pre-flight."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import insert, text
from sqlalchemy.exc import DBAPIError

from dashboard.access import PAGES, principal_of_identity, principal_of_key, visible_pages
from governance.access import Principal, Role
from governance.access.principals import PrincipalService
from governance.db import make_engine, session_factory
from governance.db.models import PrincipalRecord

OPERATOR = Principal.operator("tests")


def test_a_single_sign_on_identity_acts_as_the_principal_of_that_name(
    fresh_database_url: str,
) -> None:
    engine = make_engine(fresh_database_url)
    sessions = session_factory(engine)
    people = PrincipalService(sessions)
    people.create("alice@example.test", [Role.AUDITOR], actor=OPERATOR)
    people.create("bob@example.test", [Role.SRE], actor=OPERATOR)
    people.disable("bob@example.test", actor=OPERATOR)
    alice = principal_of_identity(sessions, "alice@example.test")
    assert alice is not None and alice.roles == frozenset({Role.AUDITOR})
    assert [p.title for p in visible_pages(alice)] == ["Overview", "Audit log", "Spend", "Policies"]
    assert principal_of_identity(sessions, "bob@example.test") is None  # disabled
    assert principal_of_identity(sessions, "carol@example.test") is None  # unknown
    assert principal_of_identity(sessions, "") is None
    assert principal_of_key(sessions, "  ") is None
    engine.dispose()


def test_every_page_is_reachable_by_some_role() -> None:
    for page in PAGES:
        assert any(page.allows(Principal("k", "p", None, None, roles=frozenset({r}))) for r in Role)


def test_the_read_only_engine_refuses_writes(fresh_database_url: str) -> None:
    engine = make_engine(fresh_database_url, read_only=True)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM principals")).scalar() == 0
        with pytest.raises(DBAPIError, match=r"(?i)read.only|readonly"):
            connection.execute(
                insert(PrincipalRecord).values(
                    id="x", name="x", roles=[], created_at=text("CURRENT_TIMESTAMP")
                )
            )
    engine.dispose()


def _dashboard(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tollhouse", "dashboard", "--config", str(config), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_dashboard_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    config = tmp_path / "tollhouse.yaml"
    config.write_text(yaml.safe_dump({"database_url": f"sqlite:///{tmp_path / 'new.db'}"}))
    result = _dashboard(config)
    assert result.returncode == 2
    assert "tollhouse db upgrade" in result.stderr


def test_the_dashboard_refuses_a_missing_sso_secrets_file(
    fresh_database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "tollhouse.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": fresh_database_url,
                "dashboard": {"oidc": {"secrets_file": str(tmp_path / "missing.toml")}},
            }
        )
    )
    result = _dashboard(config)
    assert result.returncode == 2
    assert "dashboard.oidc.secrets_file" in result.stderr and "[auth]" in result.stderr
