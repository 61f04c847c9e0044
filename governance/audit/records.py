"""What an audit record says, independent of how it is stored."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Any

from governance.audit.chain import FORMAT, HASHED_FIELDS, hash_row, hashed_fields
from governance.db.types import canonical_json_text


class RecordKind(StrEnum):
    ADMITTED = "admitted"
    COMPLETED = "completed"
    ADMIN = "admin"  # a change made by an administrator (policy activation, ...)


class Completion(StrEnum):
    """How a request ended (the ``status`` of its completed record)."""

    OK = "ok"
    REJECTED = "rejected"  # refused by Tollhouse before any upstream call
    UPSTREAM_ERROR = "upstream_error"
    TIMEOUT = "timeout"
    CLIENT_DISCONNECTED = "client_disconnected"
    STREAM_INTERRUPTED = "stream_interrupted"  # the upstream broke off after the first byte
    AUDIT_UNAVAILABLE = "audit_unavailable"
    INTERNAL_ERROR = "internal_error"  # a fault in Tollhouse itself


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One row of ``audit_records``. Field names match the table's columns."""

    request_id: str
    kind: RecordKind
    recorded_at: dt.datetime
    app: str
    team: str | None
    key_id: str
    endpoint: str
    status: str
    content_retention: str
    end_user: str | None = None
    requested_model: str | None = None
    stream: bool = False
    upstream: str | None = None
    deployment_model: str | None = None
    destination: str | None = None
    attempts: list[dict[str, Any]] | None = None
    response_id: str | None = None
    response_model: str | None = None
    system_fingerprint: str | None = None
    http_status: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    finish_reasons: list[str] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    usage_estimated: bool = False
    cost: Decimal | None = None
    currency: str | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    request_content: Any | None = None
    response_content: Any | None = None
    policy_name: str | None = None
    policy_version: int | None = None
    decision: dict[str, Any] | None = None
    shadow: dict[str, Any] | None = None
    cached_input_tokens: int | None = None  # the part of input_tokens read from a cache
    price_id: int | None = None  # the ``prices`` row the cost was computed with

    def as_row(self) -> dict[str, Any]:
        """The entry's own fields (content included), as named in `AuditEntry`."""
        return {name: getattr(self, name) for name in _ENTRY_FIELDS}

    @property
    def has_content(self) -> bool:
        return self.content_retention != "none" and (
            self.request_content is not None or self.response_content is not None
        )

    def content_json(self) -> bytes:
        """The content body to store: canonical JSON of request and response."""
        return canonical_json_text(
            {"request": self.request_content, "response": self.response_content}
        ).encode("utf-8")


_ENTRY_FIELDS = tuple(f.name for f in dataclasses.fields(AuditEntry))  # read once, not per row


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ChainedEntry(AuditEntry):
    """An entry at its place in a hash chain: what the writer's batch ledgers see.

    ``(chain_id, seq)`` identifies the stored record on every backend, so derived rows
    (tags) can point at it; a stored ``audit_records`` row reads the same way.
    """

    chain_id: str
    seq: int

    @classmethod
    def of(cls, entry: AuditEntry, chain_id: str, seq: int) -> ChainedEntry:
        return cls(**entry.as_row(), chain_id=chain_id, seq=seq)


_CONTENT_FIELDS = ("request_content", "response_content")
_CHAIN_FIELDS = ("chain_id", "seq", "prev_hash", "content_digest", "content_key_id", "record_hash")
CHAINED_ROW_KEYS = (
    tuple(f.name for f in dataclasses.fields(AuditEntry) if f.name not in _CONTENT_FIELDS)
    + _CHAIN_FIELDS
)  # the keys of every `chained_row`


def chained_row(
    entry: AuditEntry,
    chain_id: str,
    seq: int,
    prev_hash: str,
    *,
    content_digest: str | None = None,
    content_key_id: str | None = None,
    fmt: int = FORMAT,
) -> dict[str, Any]:
    """The ``audit_records`` row of ``entry`` at ``seq`` in ``chain_id``, hash included.

    ``fmt`` is the chain's hash format. A field that format does not hash must be empty
    (``cached_input_tokens`` on a format-1 chain): it would be stored unprotected.
    """
    row = entry.as_row()
    for name in _CONTENT_FIELDS:
        del row[name]
    row.update(
        chain_id=chain_id,
        seq=seq,
        prev_hash=prev_hash,
        content_digest=content_digest,
        content_key_id=content_key_id,
    )
    hashed = hashed_fields(fmt)
    for name in HASHED_FIELDS[len(hashed) :]:
        if row.get(name) is not None:
            raise ValueError(f"audit hash format {fmt} cannot record {name}; it is not hashed")
    row["record_hash"] = hash_row(row, fmt)
    return row
