"""Reading the audit trail for people: filtered queries, content, exports with manifests.

Every method takes the acting `Principal` and checks its permission: metadata needs
``audit:read``, content ``audit:content``. Reading content and exporting are themselves
audited (an ``admin`` record on the shared chain, committed before anything is returned).
Queries page or stream in the database; nothing loads the table into memory.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal

import orjson
from sqlalchemy import Engine, Select, and_, func, literal, select
from sqlalchemy.orm import Session, sessionmaker

from governance.access import Permission, Principal
from governance.audit.admin import admin_entry
from governance.audit.checkpoint import Checkpoint, iter_checkpoints
from governance.audit.filters import RecordFilter, dense_tags
from governance.audit.opened import open_content
from governance.audit.shared import append_shared
from governance.audit.vault import KeyRing, MasterKey
from governance.db.models import AuditContent, AuditRecord
from governance.errors import InvalidRequestError, NotFoundError

__all__ = [
    "AuditReader",
    "ExportFormat",
    "Manifest",
    "RecordFilter",  # defined in governance.audit.filters; imported from here too
    "recent_completions",
    "record_dict",
    "to_json",
]

ExportFormat = Literal["jsonl", "csv"]
COLUMNS: tuple[str, ...] = tuple(c.key for c in AuditRecord.__table__.columns)
_SORTABLE = frozenset({"id", "recorded_at", "app", "requested_model", "latency_ms", "cost"})


_WithContent = Select[AuditRecord, AuditContent]


@dataclass(frozen=True, slots=True)
class Manifest:
    path: Path
    count: int
    sha256: str
    document: dict[str, Any]


def record_dict(record: AuditRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in COLUMNS}


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")  # exact, never exponent notation
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_json(value: Any) -> bytes:
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_UTC_Z)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AuditReader:
    def __init__(
        self,
        engine: Engine,
        sessions: sessionmaker[Session],
        master: MasterKey | None = None,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._master = master
        self._clock = clock

    # -- metadata ---------------------------------------------------------------------
    def query(
        self,
        actor: Principal,
        where: RecordFilter,
        *,
        order: str = "-recorded_at",
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """One page of record metadata, sorted by ``order`` (a column name, ``-`` for
        descending). It does not count the matches: `count` does, up to a cap."""
        actor.require(Permission.AUDIT_READ)
        column_name = order.lstrip("-")
        if column_name not in _SORTABLE:
            raise InvalidRequestError(
                f"cannot sort by {column_name!r}; sortable: {', '.join(sorted(_SORTABLE))}",
                param="order",
            )
        if not 1 <= limit <= 1000 or offset < 0:
            raise InvalidRequestError(
                "limit must be 1 to 1000 and offset at least 0", param="limit"
            )
        column = getattr(AuditRecord, column_name)
        ordering = column.desc() if order.startswith("-") else column.asc()
        with self._sessions() as session:
            # In time order, a common tag is found fastest by walking the records.
            walk = dense_tags(session, where) if column_name in ("recorded_at", "id") else ()
            rows = session.scalars(
                where.apply(select(AuditRecord), walk=walk)
                .order_by(ordering, AuditRecord.id.desc())
                .limit(limit)
                .offset(offset)
            ).all()
        return [record_dict(r) for r in rows]

    def count(self, actor: Principal, where: RecordFilter, cap: int = 100_000) -> tuple[int, bool]:
        """How many records match, counting no further than ``cap``: ``(count, capped)``,
        where ``capped`` means there are more than ``cap``. A count stops at the cap so
        that a broad filter over millions of records costs a bounded scan."""
        actor.require(Permission.AUDIT_READ)
        if cap < 0:
            raise InvalidRequestError("cap must be at least 0", param="cap")
        matching = where.apply(select(literal(1)).select_from(AuditRecord)).limit(cap + 1)
        with self._sessions() as session:
            found = int(session.scalar(select(func.count()).select_from(matching.subquery())) or 0)
        return min(found, cap), found > cap

    # -- content ------------------------------------------------------------------------
    def show(self, actor: Principal, request_id: str) -> list[dict[str, Any]]:
        """Every record of one request with its content (decrypted); the read is audited."""
        actor.require(Permission.AUDIT_CONTENT)
        with self._sessions.begin() as session:
            rows = [
                (row[0], row[1])
                for row in session.execute(
                    self._with_content(select(AuditRecord, AuditContent))
                    .where(AuditRecord.request_id == request_id)
                    .order_by(AuditRecord.id)
                )
            ]
            if not rows:
                raise NotFoundError(f"no audit records for request {request_id!r}")
            append_shared(
                session,
                admin_entry(
                    endpoint="audit.read",
                    actor=actor,
                    recorded_at=self._clock(),
                    details={"request_id": request_id, "records": len(rows)},
                ),
            )
            ring = KeyRing(self._master)
            connection = session.connection()
            return [
                {**record_dict(record), "content": self._open(ring, connection, record, body)}
                for record, body in rows
            ]

    @staticmethod
    def _with_content(query: _WithContent) -> _WithContent:
        return query.outerjoin(
            AuditContent,
            and_(
                AuditContent.chain_id == AuditRecord.chain_id, AuditContent.seq == AuditRecord.seq
            ),
        )

    @staticmethod
    def _open(
        ring: KeyRing, connection: Any, record: AuditRecord, content: AuditContent | None
    ) -> dict[str, Any]:
        """``{"status": ..., "request": ..., "response": ...}`` of one record. Status is
        ``none`` (the policy kept none), ``present``, ``erased`` (purged, or plaintext
        forgotten), ``shredded`` (its data key was destroyed) or ``unreadable`` (sealed
        under a master key this process does not hold; ``reason`` says which)."""
        opened = open_content(
            ring,
            connection,
            chain_id=record.chain_id,
            seq=record.seq,
            digest=record.content_digest,
            key_id=record.content_key_id,
            encryption=content.encryption if content is not None else None,
            body=content.body if content is not None else None,
        )
        if opened.status == "present":
            return {"status": "present", **(opened.document or {})}
        if opened.status == "unreadable":
            return {"status": "unreadable", "reason": opened.reason}
        return {"status": opened.status}

    # -- export -------------------------------------------------------------------------
    def export(
        self,
        actor: Principal,
        where: RecordFilter,
        path: Path,
        *,
        fmt: ExportFormat = "jsonl",
        content: bool = False,
    ) -> Manifest:
        """Write the matching records to ``path`` and a manifest beside it
        (``<path>.manifest.json``): count, SHA-256 of the file, the chains and sequence
        ranges it holds, and the first checkpoint that signs all of them."""
        actor.require(Permission.AUDIT_READ)
        if content:
            actor.require(Permission.AUDIT_CONTENT)
        digest = hashlib.sha256()
        count = 0
        ranges: dict[str, list[int]] = {}
        with path.open("wb") as raw, self._sessions() as session:
            sink = _Sink(raw, digest, fmt, content)
            ring = KeyRing(self._master)
            query = where.apply(self._with_content(select(AuditRecord, AuditContent))).order_by(
                AuditRecord.recorded_at, AuditRecord.id
            )
            for record, body in session.execute(query.execution_options(yield_per=1000)):
                row = record_dict(record)
                if content:
                    row["content"] = self._open(ring, session.connection(), record, body)
                sink.write(row)
                count += 1
                span = ranges.setdefault(record.chain_id, [record.seq, record.seq])
                span[0], span[1] = min(span[0], record.seq), max(span[1], record.seq)
            sink.close()
        checkpoint = _covering(iter_checkpoints(self._engine), ranges)
        document: dict[str, Any] = {
            "format": "tollhouse-export/1",
            "file": path.name,
            "records_format": fmt,
            "count": count,
            "sha256": digest.hexdigest(),
            "filters": where.as_dict(),
            "content_included": content,
            "exported_at": self._clock().isoformat(),
            "exported_by": actor.name,
            "chains": {c: {"first_seq": s[0], "last_seq": s[1]} for c, s in sorted(ranges.items())},
            "checkpoint": checkpoint.as_json() if checkpoint else None,
        }
        with self._sessions.begin() as session:
            append_shared(
                session,
                admin_entry(
                    endpoint="audit.export",
                    actor=actor,
                    recorded_at=self._clock(),
                    details={
                        "filters": where.as_dict(),
                        "format": fmt,
                        "content_included": content,
                        "count": count,
                        "sha256": document["sha256"],
                    },
                ),
            )
        manifest_path = path.with_name(path.name + ".manifest.json")
        manifest_path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
        return Manifest(manifest_path, count, document["sha256"], document)


class _Sink:
    """Writes rows as JSON Lines or CSV while hashing exactly the bytes written."""

    def __init__(self, out: IO[bytes], digest: Any, fmt: ExportFormat, content: bool) -> None:
        self._out = out
        self._digest = digest
        self._fmt = fmt
        self._columns = [*COLUMNS, "content"] if content else list(COLUMNS)
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator="\n")
        if fmt == "csv":
            self._csv.writerow(self._columns)
            self._flush_csv()

    def write(self, row: dict[str, Any]) -> None:
        if self._fmt == "jsonl":
            self._emit(to_json(row) + b"\n")
            return
        self._csv.writerow([_csv_cell(row.get(name)) for name in self._columns])
        self._flush_csv()

    def _flush_csv(self) -> None:
        self._emit(self._buffer.getvalue().encode("utf-8"))
        self._buffer.seek(0)
        self._buffer.truncate()

    def _emit(self, data: bytes) -> None:
        self._out.write(data)
        self._digest.update(data)

    def close(self) -> None:
        self._out.flush()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return to_json(value).decode("utf-8")
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _covering(checkpoints: Iterator[Checkpoint], ranges: dict[str, list[int]]) -> Checkpoint | None:
    """The first checkpoint by which every chain in ``ranges`` is signed up to its end."""
    if not ranges:
        return None
    signed: dict[str, int] = {}
    for checkpoint in checkpoints:
        for head in checkpoint.heads:
            signed[head.chain_id] = max(head.seq, signed.get(head.chain_id, 0))
        if all(signed.get(chain, 0) >= last for chain, (_, last) in ranges.items()):
            return checkpoint
    return None


def recent_completions(sessions: sessionmaker[Session], limit: int) -> list[AuditRecord]:
    """The newest ``limit`` completed records, oldest first (metadata only)."""
    query = (
        select(AuditRecord)
        .where(AuditRecord.kind == "completed")
        .order_by(AuditRecord.id.desc())
        .limit(limit)
    )
    with sessions() as session:
        return list(reversed(session.scalars(query).all()))
