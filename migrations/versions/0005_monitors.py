"""monitors: job runs, canary batches and baselines, model fingerprints, alert episodes

Alerts gain what the monitors need to raise, re-notify and resolve them (``condition``,
``job``, ``occurrences``, what the sinks were last told); budget alerts leave them empty.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 17:09:55.003897
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import governance.db.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_fingerprints",
        sa.Column("upstream", sa.String(length=128), nullable=False),
        sa.Column("deployment_model", sa.String(length=256), nullable=False),
        sa.Column("response_model", sa.String(length=256), nullable=False),
        sa.Column("system_fingerprint", sa.String(length=256), nullable=False),
        sa.Column("headers_digest", sa.String(length=64), nullable=False),
        sa.Column("headers", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("first_seen", governance.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen", governance.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("first_request_id", sa.String(length=64), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "upstream", "deployment_model", "response_model", "system_fingerprint", "headers_digest"
        ),
    )
    op.create_table(
        "monitor_cursors",
        sa.Column("job", sa.String(length=128), nullable=False),
        sa.Column("position", governance.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", governance.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job"),
    )
    op.create_table(
        "monitor_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("job", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("started_at", governance.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", governance.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("figures", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("report_path", sa.String(length=1024), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("monitor_runs", schema=None) as batch_op:
        batch_op.create_index("ix_monitor_runs_job", ["job", "subject", "started_at"], unique=False)

    op.create_table(
        "canary_baselines",
        sa.Column("job", sa.String(length=128), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("set_at", governance.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("set_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["monitor_runs.id"],
        ),
        sa.PrimaryKeyConstraint("job", "subject"),
    )
    op.create_table(
        "canary_samples",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("batch", sa.String(length=16), nullable=False),
        sa.Column("prompt_id", sa.String(length=64), nullable=False),
        sa.Column("sample_index", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("completion", sa.Text(), nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=True),
        sa.Column("token_logprobs", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("top_logprobs", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("response_model", sa.String(length=256), nullable=True),
        sa.Column("system_fingerprint", sa.String(length=256), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["monitor_runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("canary_samples", schema=None) as batch_op:
        batch_op.create_index("ix_canary_samples_run", ["run_id", "prompt_id"], unique=False)

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("condition", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("job", sa.String(length=128), nullable=True))
        batch_op.add_column(
            sa.Column("last_seen_at", governance.db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("occurrences", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.add_column(sa.Column("notified_state", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("notified_at", governance.db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_alerts_condition", ["condition", "raised_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_condition")
        batch_op.drop_column("notified_at")
        batch_op.drop_column("notified_state")
        batch_op.drop_column("occurrences")
        batch_op.drop_column("last_seen_at")
        batch_op.drop_column("job")
        batch_op.drop_column("condition")

    with op.batch_alter_table("canary_samples", schema=None) as batch_op:
        batch_op.drop_index("ix_canary_samples_run")

    op.drop_table("canary_samples")
    op.drop_table("canary_baselines")
    with op.batch_alter_table("monitor_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_runs_job")

    op.drop_table("monitor_runs")
    op.drop_table("monitor_cursors")
    op.drop_table("model_fingerprints")
