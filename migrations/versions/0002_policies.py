"""policies: versions, activation history, current state; policy columns on audit records

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import governance.db.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", governance.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", "version"),
    )
    op.create_table(
        "policy_activations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("previous_version", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("at", governance.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["name", "version"],
            ["policy_versions.name", "policy_versions.version"],
            name="fk_policy_activations_version",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("policy_activations", schema=None) as batch_op:
        batch_op.create_index("ix_policy_activations_name_id", ["name", "id"], unique=False)

    op.create_table(
        "policy_state",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("active_version", sa.Integer(), nullable=True),
        sa.Column("shadow_version", sa.Integer(), nullable=True),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", governance.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["name", "active_version"],
            ["policy_versions.name", "policy_versions.version"],
            name="fk_policy_state_active",
        ),
        sa.ForeignKeyConstraint(
            ["name", "shadow_version"],
            ["policy_versions.name", "policy_versions.version"],
            name="fk_policy_state_shadow",
        ),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("policy_name", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("policy_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("decision", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("shadow", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_column("shadow")
        batch_op.drop_column("decision")
        batch_op.drop_column("policy_version")
        batch_op.drop_column("policy_name")

    op.drop_table("policy_state")
    with op.batch_alter_table("policy_activations", schema=None) as batch_op:
        batch_op.drop_index("ix_policy_activations_name_id")

    op.drop_table("policy_activations")
    op.drop_table("policy_versions")
