"""Group commit for audit records, each writer appending to its own hash chain.

Requests hand records to one writer thread per process; the thread inserts everything
pending in one transaction and then wakes every waiter. So commits never run on the event
loop, a busy proxy pays one commit per batch rather than per request, and a caller that
awaits `AuditWriter.write` knows its records are durable. When the store cannot write,
waiters get `AuditUnavailableError` (the proxy fails closed); the next batch simply tries
again, so the writer recovers by itself when the database returns.

The writer owns one chain (``chain_id``) for its lifetime: it numbers records 1, 2, 3...
and links each to the previous record's hash, so writers in other processes never wait
on it. The head (last seq and hash) advances only when a batch commits; after a failed
batch it is re-read from the database, because a commit whose acknowledgement was lost
may still have landed. Content is sealed here too (`DataKeys`), off the event loop.

Optional ``ledgers`` (`governance.spend.ledger.Ledger` for the spend rollups and
counters, `governance.audit.traffic.TrafficLedger` for the traffic rollup and record
tags) are applied in order to each batch, placed in its chain (`ChainedEntry`), in the
same transaction, so what they derive commits or fails together with the records.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import secrets
import socket
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol, cast

from sqlalchemy import Connection, Engine, Table, bindparam, insert, select, update

from governance.audit.chain import FORMAT, GENESIS, content_digest
from governance.audit.records import CHAINED_ROW_KEYS, AuditEntry, ChainedEntry, chained_row
from governance.audit.vault import ENCRYPTION, DataKeys, seal
from governance.db.bulk import BulkStatement
from governance.db.models import AuditChain, AuditContent, AuditRecord
from governance.errors import AuditUnavailableError

log = logging.getLogger(__name__)

# Built once: constructing statements costs more than executing them at one record a batch.
_chains = cast(Table, AuditChain.__table__)
_INSERT_RECORDS = BulkStatement(insert(cast(Table, AuditRecord.__table__)), CHAINED_ROW_KEYS)
_INSERT_CONTENT = BulkStatement(
    insert(cast(Table, AuditContent.__table__)), ("chain_id", "seq", "encryption", "body")
)
_INSERT_CHAIN = insert(_chains)
_READ_HEAD = select(_chains.c.head_seq, _chains.c.head_hash).where(
    _chains.c.chain_id == bindparam("chain")
)
_MOVE_HEAD = (
    update(_chains)
    .where(_chains.c.chain_id == bindparam("chain"), _chains.c.head_seq == bindparam("old"))
    .values(head_seq=bindparam("seq"), head_hash=bindparam("hash"))
)


class BatchLedger(Protocol):
    """Derives rows from a batch of records inside the transaction that inserts them."""

    def apply(self, connection: Connection, records: Sequence[ChainedEntry]) -> None: ...


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

    def __init__(
        self,
        engine: Engine,
        *,
        batch_max: int = 512,
        queue_max: int = 20_000,
        data_keys: DataKeys | None = None,
        chain_id: str | None = None,
        ledgers: Sequence[BatchLedger] = (),
    ) -> None:
        self._engine = engine
        self._ledgers = tuple(ledgers)
        self.chain_id = chain_id or f"w-{secrets.token_hex(8)}"
        self._data_keys = data_keys
        self._head: tuple[int, str] | None = None  # None: unknown, read it from the database
        self._registered = False
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
        """Write what is queued, stop the thread, and mark the chain closed."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if self._registered:
            try:
                with self._engine.begin() as connection:
                    connection.execute(
                        update(AuditChain)
                        .where(AuditChain.chain_id == self.chain_id)
                        .values(closed_at=dt.datetime.now(dt.UTC))
                    )
            except Exception as exc:  # the chain stays open; verification does not mind
                log.warning("could not mark audit chain closed (%s)", type(exc).__name__)

    @property
    def encrypts(self) -> bool:
        """Whether ``full`` content can be stored (a master key is configured)."""
        return self._data_keys is not None

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
        entries = [entry for item in batch for entry in item.entries]
        try:
            with self._engine.begin() as connection:
                head = self._append(connection, entries)
        except Exception as exc:  # any store failure fails the waiting requests closed
            self._head = None  # the commit may have landed anyway: re-read the head
            if self._data_keys is not None:
                self._data_keys.rolled_back()
            if self._healthy:
                log.error(
                    "audit store write failed (%s); refusing requests until it recovers",
                    type(exc).__name__,
                )
            self._healthy = False
            return AuditUnavailableError("the audit store cannot write; request refused")
        self._head = head
        self._registered = True
        if self._data_keys is not None:
            self._data_keys.committed()
        if not self._healthy:
            log.warning("audit store writable again")
        self._healthy = True
        self.batches_committed += 1
        return None

    def _append(self, connection: Connection, entries: list[AuditEntry]) -> tuple[int, str]:
        """Insert ``entries`` after the chain's head; return the new head."""
        if self._head is None:
            stored = connection.execute(_READ_HEAD, {"chain": self.chain_id}).one_or_none()
            self._registered = stored is not None
            self._head = (stored[0], stored[1]) if stored is not None else (0, GENESIS)
        first_seq, last_hash = self._head
        seq = first_seq
        rows: list[dict[str, object]] = []
        contents: list[dict[str, object]] = []
        for entry in entries:
            seq += 1
            digest = key_id = None
            if entry.has_content:
                sealed = self._content(connection, entry, seq)
                if sealed is not None:
                    body, encryption, key_id = sealed
                    digest = content_digest(body)
                    contents.append(
                        {
                            "chain_id": self.chain_id,
                            "seq": seq,
                            "encryption": encryption,
                            "body": body,
                        }
                    )
            row = chained_row(
                entry, self.chain_id, seq, last_hash, content_digest=digest, content_key_id=key_id
            )
            last_hash = str(row["record_hash"])
            rows.append(row)
        if not self._registered:
            connection.execute(
                _INSERT_CHAIN,
                [
                    {
                        "chain_id": self.chain_id,
                        "format": FORMAT,
                        "kind": "writer",
                        "writer": f"{socket.gethostname()}:{os.getpid()}"[:256],
                        "started_at": dt.datetime.now(dt.UTC),
                        "head_seq": seq,
                        "head_hash": last_hash,
                        "signed_seq": 0,
                    }
                ],
            )
        else:
            moved = connection.execute(
                _MOVE_HEAD,
                {"chain": self.chain_id, "old": first_seq, "seq": seq, "hash": last_hash},
            )
            if moved.rowcount != 1:
                raise RuntimeError(f"audit chain {self.chain_id} moved under its writer")
        _INSERT_RECORDS.execute(connection, rows)
        _INSERT_CONTENT.execute(connection, contents)
        if self._ledgers:
            placed = [
                ChainedEntry.of(entry, self.chain_id, first_seq + i)
                for i, entry in enumerate(entries, start=1)
            ]
            for ledger in self._ledgers:
                ledger.apply(connection, placed)
        return seq, last_hash

    def _content(
        self, connection: Connection, entry: AuditEntry, seq: int
    ) -> tuple[bytes, str, str | None] | None:
        """The body to store for ``entry``: plaintext JSON, or sealed for ``full``."""
        plain = entry.content_json()
        if entry.content_retention != "full":
            return plain, "none", None
        if self._data_keys is None:  # the pipeline refuses such requests; never store plain
            log.error("full content without a master key was not stored")
            return None
        key_id, key = self._data_keys.key_for(connection, entry.app, entry.end_user)
        return seal(key, plain, self.chain_id, seq), ENCRYPTION, key_id

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
