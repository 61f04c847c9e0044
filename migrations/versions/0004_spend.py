"""spend: prices, daily rollups, budget and rate counters, alerts; audit format 2 columns

Audit records gain ``cached_input_tokens`` and ``price_id`` (hashed by format 2, which
chains started after this revision use; older chains keep format 1). The rollups and the
budget counters are filled from the completed records already stored, so they equal
the sums over the audit trail from the start.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 16:02:10.862267
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import governance.db.types
from governance.spend.ledger import Ledger, Totals

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("dedupe_key", sa.String(length=400), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("raised_at", governance.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", governance.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", governance.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key"),
    )
    op.create_table(
        "prices",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("upstream", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "input", governance.db.types.ExactDecimal(precision=30, scale=12), nullable=False
        ),
        sa.Column(
            "cached_input", governance.db.types.ExactDecimal(precision=30, scale=12), nullable=True
        ),
        sa.Column(
            "output", governance.db.types.ExactDecimal(precision=30, scale=12), nullable=False
        ),
        sa.Column("basis", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("source", sa.String(length=256), nullable=False),
        sa.Column("loaded_at", governance.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("loaded_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("upstream", "model", "effective_from", name="uq_prices_model_date"),
    )
    op.create_table(
        "rate_counters",
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("window_start", governance.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "subject", "window_start"),
    )
    with op.batch_alter_table("rate_counters", schema=None) as batch_op:
        batch_op.create_index("ix_rate_counters_window", ["window_start"], unique=False)

    op.create_table(
        "spend_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("app", sa.String(length=128), nullable=False),
        sa.Column("team", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("upstream", sa.String(length=128), nullable=False),
        sa.Column("deployment_model", sa.String(length=256), nullable=False),
        sa.Column("destination", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("succeeded", sa.BigInteger(), nullable=False),
        sa.Column("estimated", sa.BigInteger(), nullable=False),
        sa.Column("unpriced", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost", governance.db.types.ExactDecimal(precision=30, scale=12), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "app", "team", "model", "upstream", "deployment_model", "destination", "currency"
        ),
    )
    op.create_table(
        "usage_counters",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("app", sa.String(length=128), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost", governance.db.types.ExactDecimal(precision=30, scale=12), nullable=False),
        sa.PrimaryKeyConstraint("scope", "app", "subject", "period", "period_start"),
    )
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cached_input_tokens", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("price_id", sa.BigInteger(), nullable=True))
    _backfill_rollups()


def _backfill_rollups() -> None:
    """Sum the completed records already stored into the rollups and budget counters
    (not the rate windows: those only matter for the current minute)."""
    records = sa.table(
        "audit_records",
        *(
            sa.column(name)
            for name in (
                "kind",
                "status",
                "app",
                "team",
                "key_id",
                "end_user",
                "requested_model",
                "upstream",
                "deployment_model",
                "destination",
                "input_tokens",
                "cached_input_tokens",
                "output_tokens",
                "currency",
            )
        ),
        sa.column("recorded_at", governance.db.types.UTCDateTime()),
        sa.column("usage_estimated", sa.Boolean()),
        sa.column("cost", governance.db.types.ExactDecimal()),
    )
    connection = op.get_bind()
    totals = Totals({}, {}, {})
    rows = connection.execute(
        sa.select(records).where(records.c.kind == "completed").execution_options(yield_per=5000)
    )
    for row in rows:
        totals.add(row)
    if totals.daily:
        Ledger().apply_totals(connection, Totals(totals.daily, totals.counters, {}))


def downgrade() -> None:
    raise NotImplementedError(
        "0004 cannot be downgraded: format-2 audit records hash the columns it adds"
    )
