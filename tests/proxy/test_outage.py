"""When the database cannot write, the proxy answers 503, sends nothing upstream, and
recovers by itself when the database returns."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator

import openai
import pytest
from sqlalchemy.engine import make_url

import migrations
from governance.pii import TextAnalyzer
from tests.conftest import REQUIRE_POSTGRES, create_database
from tests.proxy.conftest import Harness, running_proxy
from tests.support import pg
from tests.support.pg import wait_until
from tests.upstream.faulty import FaultyUpstream

ASK = [{"role": "user", "content": "still there?"}]


def assert_refused_without_upstream_call(proxy: Harness) -> None:
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as caught:
            proxy.client().chat.completions.create(
                model="chat-default", messages=ASK, stream=stream
            )
        assert caught.value.status_code == 503
        assert caught.value.code == "audit_unavailable"
    assert proxy.alpha.received == []


def recovers(proxy: Harness) -> bool:
    def answered() -> bool:
        try:
            proxy.client().chat.completions.create(model="chat-default", messages=ASK)
        except openai.APIStatusError:
            return False
        return True

    return wait_until(answered, 30)


@pytest.fixture
def fresh_upstreams(
    upstreams: tuple[FaultyUpstream, FaultyUpstream],
) -> tuple[FaultyUpstream, FaultyUpstream]:
    for upstream in upstreams:
        upstream.reset()
    return upstreams


def test_sqlite_locked(
    tmp_path: object,
    fresh_upstreams: tuple[FaultyUpstream, FaultyUpstream],
    analyzer: TextAnalyzer,
) -> None:
    path = f"{tmp_path}/locked.db"
    url = f"sqlite:///{path}"
    migrations.upgrade(url)
    with running_proxy(
        url, fresh_upstreams, analyzer, audit={"write_timeout_s": 0.5}, auth_cache_ttl_s=60
    ) as proxy:
        proxy.client().chat.completions.create(model="chat-default", messages=ASK)  # warm
        proxy.alpha.reset()
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            assert_refused_without_upstream_call(proxy)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert recovers(proxy)
        assert len(proxy.alpha.received) >= 1


@pytest.fixture
def private_cluster() -> Iterator[pg.TempCluster]:
    if not pg.available():
        if os.environ.get(REQUIRE_POSTGRES):
            pytest.fail("PostgreSQL binaries are required for the outage test")
        pytest.skip("initdb/pg_ctl not on PATH")
    cluster = pg.TempCluster().init()
    try:
        yield cluster
    finally:
        cluster.destroy()


def test_postgresql_stopped_and_restarted(
    private_cluster: pg.TempCluster,
    fresh_upstreams: tuple[FaultyUpstream, FaultyUpstream],
    analyzer: TextAnalyzer,
) -> None:
    url = create_database(private_cluster.url)
    assert make_url(url).port == private_cluster.port
    migrations.upgrade(url)
    with running_proxy(
        url, fresh_upstreams, analyzer, audit={"write_timeout_s": 2.0}, auth_cache_ttl_s=60
    ) as proxy:
        proxy.client().chat.completions.create(model="chat-default", messages=ASK)
        proxy.alpha.reset()
        private_cluster.stop()
        assert_refused_without_upstream_call(proxy)
        private_cluster.start()
        assert recovers(proxy)
