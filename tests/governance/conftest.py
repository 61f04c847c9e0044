"""Fixtures for the audit-trail tests: a fresh database engine and audit key material."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from governance.db import make_engine
from tests.support.audit_keys import write_audit_keys


@pytest.fixture
def fresh_engine(fresh_database_url: str) -> Iterator[Engine]:
    engine = make_engine(fresh_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def audit_keys(tmp_path: Path) -> dict[str, str]:
    """``master_key_file`` and ``signing_key_file`` entries for an ``audit`` config."""
    return write_audit_keys(tmp_path / "keys")
