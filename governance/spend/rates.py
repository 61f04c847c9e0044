"""Rate limits: requests and tokens per UTC minute, per key or app.

Requests are counted at admission. On PostgreSQL, with one conditional upsert per scope
(``requests = requests + 1 WHERE requests < limit``), atomic, so a limit holds exactly
across processes. On SQLite (one process) they are counted in memory: an upsert would
wait for SQLite's one write lock, held by the audit writer while it commits. Tokens are
added when requests complete (the audit writer's `governance.spend.ledger`); a request is
admitted while the minute's tokens are below the limit. Windows are fixed UTC minutes.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Engine, Table, bindparam, delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from governance.db.spend_models import RateCounter
from governance.policy.schema import RateLimit
from governance.spend.ledger import minute_of
from governance.spend.limit_notices import rate_error

if TYPE_CHECKING:
    from governance.spend.limits import Subject

_NO_LIMIT = 2**62
Scope = tuple[str, str, int, int]  # scope, subject, requests limit, tokens limit


def rate_scopes(subject: Subject, rate_limits: Iterable[RateLimit]) -> list[Scope]:
    """The strictest limits per scope for this subject, sorted (a fixed lock order)."""
    limits: dict[str, tuple[int, int]] = {}
    for limit in rate_limits:
        requests, tokens = limits.get(limit.scope, (_NO_LIMIT, _NO_LIMIT))
        limits[limit.scope] = (
            min(requests, limit.requests_per_minute or _NO_LIMIT),
            min(tokens, limit.tokens_per_minute or _NO_LIMIT),
        )
    names = {"app": subject.app, "key": subject.key_id}
    return [(scope, names[scope], *limits[scope]) for scope in sorted(limits)]


class RateCounting:
    def __init__(self) -> None:
        self._upsert: Any = None
        self._lock = threading.Lock()
        self._window: dt.datetime | None = None  # SQLite: this minute's requests, in memory
        self._requests: dict[tuple[str, str], int] = {}

    def count(self, connection: Connection, scopes: list[Scope], now: dt.datetime) -> None:
        """Count one request in each scope, or raise `RateLimitedError` (then the caller's
        transaction rolls back whatever was counted)."""
        if not scopes:
            return
        window = minute_of(now)
        if connection.dialect.name == "sqlite":
            self._count_in_process(connection, scopes, window, now)
            return
        # A rate count lost in a crash is harmless: don't wait for the WAL flush.
        connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        for scope, name, requests, tokens in scopes:
            counted = connection.execute(
                self._counting(connection),
                {
                    "scope": scope,
                    "subject": name,
                    "window_start": window,
                    "requests": 1,
                    "tokens": 0,
                    "max_requests": requests,
                    "max_tokens": tokens,
                },
            ).one_or_none()
            if counted is None:  # the WHERE refused: find out which limit
                used_requests = connection.execute(
                    select(RateCounter.requests).where(
                        RateCounter.scope == scope,
                        RateCounter.subject == name,
                        RateCounter.window_start == window,
                    )
                ).scalar_one()
                raise rate_error(scope, name, requests, tokens, used_requests >= requests, now)

    def _count_in_process(
        self, connection: Connection, scopes: list[Scope], window: dt.datetime, now: dt.datetime
    ) -> None:
        used_tokens = dict(
            ((scope, name), tokens)
            for scope, name, tokens in connection.execute(
                select(RateCounter.scope, RateCounter.subject, RateCounter.tokens).where(
                    RateCounter.window_start == window,
                    tuple_(RateCounter.scope, RateCounter.subject).in_(
                        [(scope, name) for scope, name, _, _ in scopes]
                    ),
                )
            )
        )
        with self._lock:
            if self._window != window:
                self._window, self._requests = window, {}
            for scope, name, requests, tokens in scopes:
                counted = self._requests.get((scope, name), 0)
                if counted >= requests or used_tokens.get((scope, name), 0) >= tokens:
                    raise rate_error(scope, name, requests, tokens, counted >= requests, now)
            for scope, name, _, _ in scopes:
                self._requests[(scope, name)] = self._requests.get((scope, name), 0) + 1

    def _counting(self, connection: Connection) -> Any:
        """The conditional upsert that counts one request, built once."""
        if self._upsert is None:
            table = cast(Table, RateCounter.__table__)
            dialect = connection.dialect.name
            insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
            self._upsert = insert.on_conflict_do_update(
                index_elements=["scope", "subject", "window_start"],
                set_={"requests": table.c.requests + 1},
                where=(table.c.requests < bindparam("max_requests"))
                & (table.c.tokens < bindparam("max_tokens")),
            ).returning(table.c.requests)
        return self._upsert

    @staticmethod
    def prune(engine: Engine, before: dt.datetime) -> int:
        """Delete rate windows that started before ``before``; return how many."""
        with engine.begin() as connection:
            result = connection.execute(
                delete(RateCounter).where(RateCounter.window_start < before)
            )
            return int(result.rowcount or 0)
