"""Suite-wide fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ``TOLLHOUSE_TEST_POSTGRES_URL`` (a server URL; ``.ci/run`` sets it),
else from a throwaway cluster started here when the PostgreSQL binaries are on PATH.
With ``TOLLHOUSE_TEST_REQUIRE_POSTGRES=1`` a missing PostgreSQL fails the run instead of
skipping its half.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

import migrations
from governance.config.schema import PiiConfig
from governance.db import make_engine, normalise_url
from governance.pii import TextAnalyzer
from governance.pii.analyzer import build_analyzer
from tests.support import pg
from tests.support.audit_keys import write_audit_keys

POSTGRES_URL = "TOLLHOUSE_TEST_POSTGRES_URL"
REQUIRE_POSTGRES = "TOLLHOUSE_TEST_REQUIRE_POSTGRES"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server the suite may create databases on."""
    url = os.environ.get(POSTGRES_URL)
    if url:
        yield normalise_url(url)
        return
    if not pg.available():
        if os.environ.get(REQUIRE_POSTGRES):
            pytest.fail(f"PostgreSQL is required but neither {POSTGRES_URL} nor initdb is there")
        pytest.skip(f"no PostgreSQL: set {POSTGRES_URL} or put initdb on PATH")
    cluster = pg.TempCluster().init()
    try:
        yield cluster.url
    finally:
        cluster.destroy()


def create_database(server_url: str) -> str:
    name = f"tollhouse_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, url: str) -> None:
    name = make_url(url).database
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _migrated(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    label: str,
    backend: str | None = None,
) -> Iterator[str]:
    """A new migrated database on ``backend`` (default: the one ``request.param``
    names); dropped after."""
    if (backend or request.param) == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp(label) / 'tollhouse.db'}"
        migrations.upgrade(url)
        yield url
        return
    server = request.getfixturevalue("postgres_server")
    url = create_database(server)
    migrations.upgrade(url)
    yield url
    drop_database(server, url)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database, once per backend."""
    yield from _migrated(request, tmp_path_factory, "sqlite")


@pytest.fixture(scope="session")
def analyzer() -> TextAnalyzer:
    """The real Presidio analyzer with the default model, built once for the session."""
    return build_analyzer(PiiConfig())


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A new migrated database for one test (for tests that tamper with it)."""
    yield from _migrated(request, tmp_path_factory, "fresh")


@pytest.fixture
def fresh_postgres_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A new migrated PostgreSQL database, for what only holds across processes there."""
    yield from _migrated(request, tmp_path_factory, "fresh", backend="postgresql")


@pytest.fixture
def url_at_0002(
    fresh_database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """A new database at revision 0002 (before hash chains), on the same backend."""
    if make_url(fresh_database_url).get_backend_name() == "sqlite":
        url, server = f"sqlite:///{tmp_path / 'old.db'}", None
    else:
        server = request.getfixturevalue("postgres_server")
        url = create_database(server)
    try:
        migrations.upgrade(url, "0002")
        yield url
    finally:
        if server is not None:
            drop_database(server, url)


@pytest.fixture
def url_at_0005(
    fresh_database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """A new database at revision 0005 (before the traffic rollup), on the same backend."""
    if make_url(fresh_database_url).get_backend_name() == "sqlite":
        url, server = f"sqlite:///{tmp_path / 'old.db'}", None
    else:
        server = request.getfixturevalue("postgres_server")
        url = create_database(server)
    try:
        migrations.upgrade(url, "0005")
        yield url
    finally:
        if server is not None:
            drop_database(server, url)


@pytest.fixture
def fresh_engine(fresh_database_url: str) -> Iterator[Engine]:
    engine = make_engine(fresh_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def audit_keys(tmp_path: Path) -> dict[str, str]:
    """``master_key_file`` and ``signing_key_file`` entries for an ``audit`` config."""
    return write_audit_keys(tmp_path / "keys")
