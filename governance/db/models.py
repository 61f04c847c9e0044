"""The database models. Alembic revisions in ``migrations/`` must match these exactly."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from governance.db.types import ExactDecimal, UTCDateTime

# An autoincrementing 64-bit key; SQLite only autoincrements "INTEGER PRIMARY KEY".
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class PrincipalRecord(Base):
    """Someone (a person or an application) who holds keys and roles.

    ``roles`` is a list of role names (see ``governance.access.roles``); ``app`` and
    ``team`` are set for principals with the ``app`` role and label their traffic.
    """

    __tablename__ = "principals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    roles: Mapped[list[str]] = mapped_column(JSON)
    app: Mapped[str | None] = mapped_column(String(128))
    team: Mapped[str | None] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class ApiKey(Base):
    """A key of a principal. Only its SHA-256 is stored; ``prefix`` is the visible part.

    A key is valid until ``revoked_at`` or ``expires_at``, whichever comes first; rotating
    a key sets the old key's ``expires_at`` to the end of the overlap window and
    ``replaced_by`` to the new key's id.
    """

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    principal_id: Mapped[str] = mapped_column(ForeignKey("principals.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    replaced_by: Mapped[str | None] = mapped_column(String(32))


class AuditChain(Base):
    """One hash chain of audit records. Each audit writer (a proxy process) owns one chain
    for its lifetime; ``shared`` chains take a row lock per record (administrative records
    written inside the transaction of the change they describe).

    ``head_seq``/``head_hash`` are the chain's last record, updated in the same
    transaction that appends to it. ``format`` names the hash format (docs/audit-format.md).
    """

    __tablename__ = "audit_chains"

    chain_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    format: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    writer: Mapped[str | None] = mapped_column(String(256))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    head_seq: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(String(64))
    signed_seq: Mapped[int] = mapped_column(BigInteger, default=0)  # last checkpointed head
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class AuditRecord(Base):
    """One event in a request's life: ``admitted`` (before the upstream), ``completed``,
    or ``admin`` (a change or a read made by a principal).

    Append-only: rows are inserted and never updated. ``(chain_id, seq)`` places the
    record in its hash chain; ``record_hash`` covers every column except ``id`` (see
    docs/audit-format.md). Content lives in `AuditContent`, covered by ``content_digest``.
    """

    __tablename__ = "audit_records"
    __table_args__ = (
        Index("ix_audit_records_recorded_at", "recorded_at"),
        Index("ix_audit_records_request_id", "request_id"),
        # The audit log's common filters, newest first within them.
        Index("ix_audit_records_app_time", "app", "recorded_at"),
        Index("ix_audit_records_end_user_time", "end_user", "recorded_at"),
        UniqueConstraint("chain_id", "seq", name="uq_audit_records_chain_seq"),
        ForeignKeyConstraint(
            ["chain_id"], ["audit_chains.chain_id"], name="fk_audit_records_chain"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chain_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    prev_hash: Mapped[str] = mapped_column(String(64))
    record_hash: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    app: Mapped[str] = mapped_column(String(128))
    team: Mapped[str | None] = mapped_column(String(128))
    key_id: Mapped[str] = mapped_column(String(32))
    end_user: Mapped[str | None] = mapped_column(String(256))
    endpoint: Mapped[str] = mapped_column(String(32))
    requested_model: Mapped[str | None] = mapped_column(String(256))
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    upstream: Mapped[str | None] = mapped_column(String(128))
    deployment_model: Mapped[str | None] = mapped_column(String(256))
    destination: Mapped[str | None] = mapped_column(String(16))
    attempts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True))
    response_id: Mapped[str | None] = mapped_column(String(256))
    response_model: Mapped[str | None] = mapped_column(String(256))
    system_fingerprint: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(32))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error_type: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    finish_reasons: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    usage_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    cost: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    currency: Mapped[str | None] = mapped_column(String(3))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    content_retention: Mapped[str] = mapped_column(String(8))
    content_digest: Mapped[str | None] = mapped_column(String(64))
    content_key_id: Mapped[str | None] = mapped_column(String(32))
    # The policy version that decided the request (or that an admin action concerns), what
    # it decided, and what the shadow version would have decided. None is stored as SQL NULL
    # so "no shadow" is ``shadow IS NULL`` on every backend.
    policy_name: Mapped[str | None] = mapped_column(String(128))
    policy_version: Mapped[int | None] = mapped_column(Integer)
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    shadow: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # Format 2 (docs/audit-format.md): cached input tokens (a part of ``input_tokens``)
    # and the ``prices`` row the cost was computed with.
    cached_input_tokens: Mapped[int | None] = mapped_column(Integer)
    price_id: Mapped[int | None] = mapped_column(BigInteger)


class PolicyVersionRecord(Base):
    """One published version of a policy. Immutable: inserted once, never updated.

    ``sha256`` is the digest of the canonical JSON of ``body``; ``source`` is the YAML text
    as it was published.
    """

    __tablename__ = "policy_versions"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(128))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class PolicyActivationRecord(Base):
    """Append-only history of which version of a policy was active or shadowed, and who
    changed it. ``action`` is activate, rollback, shadow_on or shadow_off."""

    __tablename__ = "policy_activations"
    __table_args__ = (
        Index("ix_policy_activations_name_id", "name", "id"),
        ForeignKeyConstraint(
            ["name", "version"],
            ["policy_versions.name", "policy_versions.version"],
            name="fk_policy_activations_version",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(16))
    version: Mapped[int | None] = mapped_column(Integer)
    previous_version: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(128))
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class PolicyStateRecord(Base):
    """The current state of each policy: one row per name, the proxy's cheap poll.

    Changed only under a row lock together with a `PolicyActivationRecord`; ``generation``
    grows by one with every change, so a poller compares one integer.
    """

    __tablename__ = "policy_state"
    __table_args__ = (
        ForeignKeyConstraint(
            ["name", "active_version"],
            ["policy_versions.name", "policy_versions.version"],
            name="fk_policy_state_active",
        ),
        ForeignKeyConstraint(
            ["name", "shadow_version"],
            ["policy_versions.name", "policy_versions.version"],
            name="fk_policy_state_shadow",
        ),
    )

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    active_version: Mapped[int | None] = mapped_column(Integer)
    shadow_version: Mapped[int | None] = mapped_column(Integer)
    generation: Mapped[int] = mapped_column(BigInteger)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class AuditContent(Base):
    """The stored content of one audit record: the canonical JSON of
    ``{"request": ..., "response": ...}``, AES-256-GCM encrypted under a data key when the
    policy keeps ``full`` content. Deleted by purge (retention) and by forget for plaintext
    content; the record's ``content_digest`` (SHA-256 of ``body``) stays in the chain."""

    __tablename__ = "audit_content"
    __table_args__ = (
        ForeignKeyConstraint(
            ["chain_id", "seq"],
            ["audit_records.chain_id", "audit_records.seq"],
            name="fk_audit_content_record",
        ),
    )

    chain_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    encryption: Mapped[str] = mapped_column(String(16))  # "none" or "aes-256-gcm"
    body: Mapped[bytes] = mapped_column(LargeBinary)


class AuditDataKey(Base):
    """A data key for ``full`` content of one app (and end user, when the request names
    one), wrapped (AES-256-GCM) by the master key ``master_key_id``. Forgetting an app or
    a user sets ``wrapped`` to NULL: the content it protected can never be read again."""

    __tablename__ = "audit_data_keys"
    __table_args__ = (
        Index("ix_audit_data_keys_app", "app"),
        Index("ix_audit_data_keys_end_user", "end_user"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    app: Mapped[str] = mapped_column(String(128))
    end_user: Mapped[str | None] = mapped_column(String(256))
    master_key_id: Mapped[str] = mapped_column(String(16))
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    destroyed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class AuditCheckpoint(Base):
    """A signed statement of chain heads. ``body`` is the exact signed text (JSON);
    ``previous`` is the digest of the checkpoint before it (unique, so concurrent signers
    cannot fork the sequence); ``digest`` is SHA-256 of ``body``."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    key_id: Mapped[str] = mapped_column(String(16))
    previous: Mapped[str] = mapped_column(String(64), unique=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    body: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(128))


class PolicyApprovalRecord(Base):
    """An approval of one policy version by a principal other than its author (four eyes).
    Append-only; a version may be activated once it has one."""

    __tablename__ = "policy_approvals"
    __table_args__ = (
        ForeignKeyConstraint(
            ["name", "version"],
            ["policy_versions.name", "policy_versions.version"],
            name="fk_policy_approvals_version",
        ),
        Index("ix_policy_approvals_name_version", "name", "version"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    approver: Mapped[str] = mapped_column(String(128))
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
