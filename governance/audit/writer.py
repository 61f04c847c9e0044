"""Group commit for audit records.

Requests hand records to one writer thread per process; the thread inserts everything
pending in one transaction and then wakes every waiter. So commits never run on the event
loop, a busy proxy pays one commit per batch rather than per request, and a caller that
awaits `AuditWriter.write` knows its records are durable. When the store cannot write,
waiters get `AuditUnavailableError` (the proxy fails closed); the next batch simply tries
again, so the writer recovers by itself when the database returns.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from sqlalchemy import Engine, insert

from governance.audit.records import AuditEntry
from governance.db.models import AuditRecord
from governance.errors import AuditUnavailableError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pending:
    entries: Sequence[AuditEntry]
    loop: asyncio.AbstractEventLoop | None = None
    waiter: asyncio.Future[None] | Future[None] | None = None
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.entries)


class AuditWriter:
    """Batches audit records into one transaction per round trip to the database."""

    def __init__(self, engine: Engine, *, batch_max: int = 512, queue_max: int = 20_000) -> None:
        self._engine = engine
        self._batch_max = batch_max
        self._queue_max = queue_max
        self._cond = threading.Condition()
        self._queue: deque[_Pending] = deque()
        self._queued_records = 0
        self._closing = False
        self._thread: threading.Thread | None = None
        self._healthy = True
        self.batches_committed = 0

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name="tollhouse-audit-writer", daemon=True
        )
        self._thread.start()

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    @property
    def healthy(self) -> bool:
        """False after a failed batch, until a batch commits again."""
        return self._healthy

    @property
    def queued_records(self) -> int:
        return self._queued_records

    # -- submitting ----------------------------------------------------------------
    async def write(self, entries: Sequence[AuditEntry], timeout_s: float) -> None:
        """Return once the entries are committed; raise `AuditUnavailableError` otherwise."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._enqueue(_Pending(entries, loop, waiter))
        try:
            await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError as exc:
            raise AuditUnavailableError(
                f"the audit store did not confirm the record within {timeout_s:g}s"
            ) from exc

    def write_blocking(self, entries: Sequence[AuditEntry], timeout_s: float) -> None:
        """`write` for threads without an event loop."""
        waiter: Future[None] = Future()
        self._enqueue(_Pending(entries, None, waiter))
        try:
            waiter.result(timeout_s)
        except TimeoutError as exc:
            raise AuditUnavailableError("the audit store did not confirm the record") from exc

    def write_nowait(self, entries: Sequence[AuditEntry]) -> None:
        """Queue entries without waiting (used when nobody is left to acknowledge)."""
        try:
            self._enqueue(_Pending(entries))
        except AuditUnavailableError:
            log.error("audit record dropped: writer closed or over capacity")

    def _enqueue(self, item: _Pending) -> None:
        with self._cond:
            if self._closing or self._thread is None:
                raise AuditUnavailableError("the audit writer is not running")
            if self._queued_records + item.size > self._queue_max:
                raise AuditUnavailableError(
                    "the audit writer is behind; retry shortly", code="audit_backpressure"
                )
            self._queue.append(item)
            self._queued_records += item.size
            self._cond.notify()

    # -- the writer thread ---------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                batch: list[_Pending] = []
                size = 0
                while self._queue and (not batch or size + self._queue[0].size <= self._batch_max):
                    item = self._queue.popleft()
                    batch.append(item)
                    size += item.size
                self._queued_records -= size
            self._notify(batch, self._commit(batch))

    def _commit(self, batch: list[_Pending]) -> BaseException | None:
        rows = [entry.as_row() for item in batch for entry in item.entries]
        try:
            with self._engine.begin() as connection:
                connection.execute(insert(AuditRecord), rows)
        except Exception as exc:  # any store failure fails the waiting requests closed
            if self._healthy:
                log.error(
                    "audit store write failed (%s); refusing requests until it recovers",
                    type(exc).__name__,
                )
            self._healthy = False
            return AuditUnavailableError("the audit store cannot write; request refused")
        if not self._healthy:
            log.warning("audit store writable again")
        self._healthy = True
        self.batches_committed += 1
        return None

    @staticmethod
    def _notify(batch: list[_Pending], error: BaseException | None) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for item in batch:
            if item.waiter is None:
                continue
            if item.loop is None:
                sync_waiter = item.waiter
                assert isinstance(sync_waiter, Future)
                if error is None:
                    sync_waiter.set_result(None)
                else:
                    sync_waiter.set_exception(error)
            else:
                assert isinstance(item.waiter, asyncio.Future)
                by_loop.setdefault(item.loop, []).append(item.waiter)
        for loop, waiters in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, waiters, error)
            except RuntimeError:  # the loop closed while we were writing
                pass


def _resolve(waiters: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for waiter in waiters:
        if waiter.done():
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(AuditUnavailableError(str(error), code="audit_unavailable"))
