"""traffic: the hourly traffic rollup, record tags, audit log indexes

``traffic_hourly`` and ``audit_tags`` are filled from the records already stored, with
the audit writer's own `TrafficLedger`, so they start equal to what the records say.
``audit_records`` gains indexes for the audit log's filters by app and by end user.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 19:08:14.215949
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import governance.db.types
from governance.audit.traffic import TrafficLedger

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_tags",
        sa.Column("tag", sa.String(length=80), nullable=False),
        sa.Column("chain_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", governance.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tag", "chain_id", "seq"),
    )
    with op.batch_alter_table("audit_tags", schema=None) as batch_op:
        batch_op.create_index("ix_audit_tags_tag_time", ["tag", "recorded_at"], unique=False)

    op.create_table(
        "traffic_hourly",
        sa.Column("hour", governance.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("app", sa.String(length=128), nullable=False),
        sa.Column("team", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("upstream", sa.String(length=128), nullable=False),
        sa.Column("deployment_model", sa.String(length=256), nullable=False),
        sa.Column("destination", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("redacted", sa.BigInteger(), nullable=False),
        sa.Column("pii_entities", sa.BigInteger(), nullable=False),
        sa.Column("retried", sa.BigInteger(), nullable=False),
        sa.Column("latency_count", sa.BigInteger(), nullable=False),
        sa.Column("latency_ms_sum", sa.Float(), nullable=False),
        sa.Column("ttft_count", sa.BigInteger(), nullable=False),
        sa.Column("ttft_ms_sum", sa.Float(), nullable=False),
        sa.Column("lat_b00", sa.BigInteger(), nullable=False),
        sa.Column("lat_b01", sa.BigInteger(), nullable=False),
        sa.Column("lat_b02", sa.BigInteger(), nullable=False),
        sa.Column("lat_b03", sa.BigInteger(), nullable=False),
        sa.Column("lat_b04", sa.BigInteger(), nullable=False),
        sa.Column("lat_b05", sa.BigInteger(), nullable=False),
        sa.Column("lat_b06", sa.BigInteger(), nullable=False),
        sa.Column("lat_b07", sa.BigInteger(), nullable=False),
        sa.Column("lat_b08", sa.BigInteger(), nullable=False),
        sa.Column("lat_b09", sa.BigInteger(), nullable=False),
        sa.Column("lat_b10", sa.BigInteger(), nullable=False),
        sa.Column("lat_b11", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "hour",
            "app",
            "team",
            "model",
            "upstream",
            "deployment_model",
            "destination",
            "status",
            "action",
        ),
    )
    with op.batch_alter_table("traffic_hourly", schema=None) as batch_op:
        batch_op.create_index("ix_traffic_hourly_upstream", ["upstream", "hour"], unique=False)

    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.create_index("ix_audit_records_app_time", ["app", "recorded_at"], unique=False)
        batch_op.create_index(
            "ix_audit_records_end_user_time", ["end_user", "recorded_at"], unique=False
        )
    _backfill()


BATCH = 5000


def _backfill() -> None:
    """Add the request records already stored to the rollup and the tags, a batch at a
    time in ``id`` order, exactly as the audit writer would have."""
    records = sa.table(
        "audit_records",
        *(
            sa.column(name)
            for name in (
                "id",
                "kind",
                "chain_id",
                "seq",
                "app",
                "team",
                "requested_model",
                "upstream",
                "deployment_model",
                "destination",
                "status",
                "latency_ms",
                "ttft_ms",
            )
        ),
        sa.column("recorded_at", governance.db.types.UTCDateTime()),
        sa.column("attempts", sa.JSON()),
        sa.column("decision", sa.JSON()),
    )
    query = (
        sa.select(records)
        .where(records.c.kind.in_(("admitted", "completed")), records.c.id > sa.bindparam("after"))
        .order_by(records.c.id)
        .limit(BATCH)
    )
    connection = op.get_bind()
    ledger = TrafficLedger()
    after = 0
    while batch := connection.execute(query, {"after": after}).all():
        ledger.apply(connection, batch)
        after = batch[-1].id


def downgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_records_end_user_time")
        batch_op.drop_index("ix_audit_records_app_time")

    with op.batch_alter_table("traffic_hourly", schema=None) as batch_op:
        batch_op.drop_index("ix_traffic_hourly_upstream")

    op.drop_table("traffic_hourly")
    with op.batch_alter_table("audit_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_tags_tag_time")

    op.drop_table("audit_tags")
