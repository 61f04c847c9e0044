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
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from governance.db.types import ExactDecimal, UTCDateTime

# An autoincrementing 64-bit key; SQLite only autoincrements "INTEGER PRIMARY KEY".
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    """A client key. Only its SHA-256 is stored; ``prefix`` is the visible part."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    app: Mapped[str] = mapped_column(String(128), index=True)
    team: Mapped[str | None] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class AuditRecord(Base):
    """One event in a request's life: ``admitted`` (before the upstream) or ``completed``.

    Append-only: rows are inserted by the audit writer and never updated.
    """

    __tablename__ = "audit_records"
    __table_args__ = (
        Index("ix_audit_records_recorded_at", "recorded_at"),
        Index("ix_audit_records_request_id", "request_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
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
    attempts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    response_id: Mapped[str | None] = mapped_column(String(256))
    response_model: Mapped[str | None] = mapped_column(String(256))
    system_fingerprint: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(32))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error_type: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    finish_reasons: Mapped[list[str] | None] = mapped_column(JSON)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    usage_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    cost: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    currency: Mapped[str | None] = mapped_column(String(3))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    content_retention: Mapped[str] = mapped_column(String(8))
    request_content: Mapped[Any | None] = mapped_column(JSON)
    response_content: Mapped[Any | None] = mapped_column(JSON)
    # The policy version that decided the request (or that an admin action concerns), what
    # it decided, and what the shadow version would have decided. None is stored as SQL NULL
    # so "no shadow" is ``shadow IS NULL`` on every backend.
    policy_name: Mapped[str | None] = mapped_column(String(128))
    policy_version: Mapped[int | None] = mapped_column(Integer)
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    shadow: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))


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
