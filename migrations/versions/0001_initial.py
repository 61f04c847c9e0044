"""initial schema: api keys and audit records

Revision ID: 0001
Revises:
Create Date: 2026-11-21 12:32:08.786260
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import governance.db.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("app", sa.String(length=128), nullable=False),
        sa.Column("team", sa.String(length=128), nullable=True),
        sa.Column("description", sa.String(length=256), nullable=True),
        sa.Column("created_at", governance.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", governance.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("prefix"),
        sa.UniqueConstraint("secret_hash"),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_app"), ["app"], unique=False)

    op.create_table(
        "audit_records",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("recorded_at", governance.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("app", sa.String(length=128), nullable=False),
        sa.Column("team", sa.String(length=128), nullable=True),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("end_user", sa.String(length=256), nullable=True),
        sa.Column("endpoint", sa.String(length=32), nullable=False),
        sa.Column("requested_model", sa.String(length=256), nullable=True),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("upstream", sa.String(length=128), nullable=True),
        sa.Column("deployment_model", sa.String(length=256), nullable=True),
        sa.Column("destination", sa.String(length=16), nullable=True),
        sa.Column("attempts", sa.JSON(), nullable=True),
        sa.Column("response_id", sa.String(length=256), nullable=True),
        sa.Column("response_model", sa.String(length=256), nullable=True),
        sa.Column("system_fingerprint", sa.String(length=256), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error_type", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("finish_reasons", sa.JSON(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("usage_estimated", sa.Boolean(), nullable=False),
        sa.Column("cost", governance.db.types.ExactDecimal(precision=30, scale=12), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("content_retention", sa.String(length=8), nullable=False),
        sa.Column("request_content", sa.JSON(), nullable=True),
        sa.Column("response_content", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.create_index("ix_audit_records_recorded_at", ["recorded_at"], unique=False)
        batch_op.create_index("ix_audit_records_request_id", ["request_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_records_request_id")
        batch_op.drop_index("ix_audit_records_recorded_at")

    op.drop_table("audit_records")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_app"))

    op.drop_table("api_keys")
