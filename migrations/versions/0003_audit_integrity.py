"""audit integrity: hash chains, content table, data keys, checkpoints; principals; approvals

Existing audit records are chained, in id order, into one chain ``migrated-0003`` (hash
format 1); their content moves to ``audit_content`` as plaintext. The shared ``admin``
chain is created here too, also with format 1. Existing keys get one ``app`` principal
per (app, team).

This revision always writes format 1, whatever `chain.FORMAT` says now: the table has
only format 1's columns at this point, and a chain keeps its format for good.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 09:00:00.000000
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import sqlalchemy as sa
from alembic import op

import governance.db.types
from governance.audit import chain

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Time = governance.db.types.UTCDateTime
MIGRATED_CHAIN = "migrated-0003"
# Hash format 1 (docs/audit-format.md), pinned: later formats hash columns added later.
_FORMAT = 1
_HASHED = tuple(name for name, _ in chain.FIELDS_V1)
_JSON = tuple(name for name in _HASHED if name in chain.JSON_FIELDS)


def upgrade() -> None:
    op.create_table(
        "principals",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("app", sa.String(length=128), nullable=True),
        sa.Column("team", sa.String(length=128), nullable=True),
        sa.Column("description", sa.String(length=256), nullable=True),
        sa.Column("created_at", _Time(timezone=True), nullable=False),
        sa.Column("disabled_at", _Time(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "audit_chains",
        sa.Column("chain_id", sa.String(length=64), nullable=False),
        sa.Column("format", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("writer", sa.String(length=256), nullable=True),
        sa.Column("started_at", _Time(timezone=True), nullable=False),
        sa.Column("head_seq", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("signed_seq", sa.BigInteger(), nullable=False),
        sa.Column("closed_at", _Time(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("chain_id"),
    )
    op.create_table(
        "audit_data_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("app", sa.String(length=128), nullable=False),
        sa.Column("end_user", sa.String(length=256), nullable=True),
        sa.Column("master_key_id", sa.String(length=16), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", _Time(timezone=True), nullable=False),
        sa.Column("destroyed_at", _Time(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_data_keys", schema=None) as batch_op:
        batch_op.create_index("ix_audit_data_keys_app", ["app"], unique=False)
        batch_op.create_index("ix_audit_data_keys_end_user", ["end_user"], unique=False)
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", _BigId, autoincrement=True, nullable=False),
        sa.Column("created_at", _Time(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("previous", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest"),
        sa.UniqueConstraint("previous"),
    )
    op.create_table(
        "policy_approvals",
        sa.Column("id", _BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("approver", sa.String(length=128), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("at", _Time(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["name", "version"],
            ["policy_versions.name", "policy_versions.version"],
            name="fk_policy_approvals_version",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("policy_approvals", schema=None) as batch_op:
        batch_op.create_index("ix_policy_approvals_name_version", ["name", "version"], unique=False)

    _keys_to_principals()
    _chain_audit_records()
    _create_shared_chain()


def _create_shared_chain() -> None:
    """The chain administrative records are appended to under a row lock."""
    op.execute(
        sa.text(
            "INSERT INTO audit_chains (chain_id, format, kind, writer, started_at, head_seq,"
            " head_hash, signed_seq) VALUES (:c, :f, 'shared', NULL, :t, 0, :g, 0)"
        ).bindparams(
            sa.bindparam("t", dt.datetime.now(dt.UTC), type_=_Time(timezone=True)),
            c=chain.SHARED_CHAIN,
            f=_FORMAT,
            g=chain.GENESIS,
        )
    )


def _keys_to_principals() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("principal_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("expires_at", _Time(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("replaced_by", sa.String(length=32), nullable=True))
    bind = op.get_bind()
    keys = sa.table(
        "api_keys",
        sa.column("id", sa.String),
        sa.column("app", sa.String),
        sa.column("team", sa.String),
        sa.column("principal_id", sa.String),
    )
    principals = sa.table(
        "principals",
        sa.column("id", sa.String),
        sa.column("name", sa.String),
        sa.column("roles", sa.JSON),
        sa.column("app", sa.String),
        sa.column("team", sa.String),
        sa.column("description", sa.String),
        sa.column("created_at", _Time(timezone=True)),
    )
    pairs = sorted(
        {(r.app, r.team) for r in bind.execute(sa.select(keys.c.app, keys.c.team))},
        key=lambda p: (p[0], p[1] or ""),
    )
    apps = [app for app, _ in pairs]
    now = dt.datetime.now(dt.UTC)
    for app, team in pairs:
        name = app if apps.count(app) == 1 else f"{app}@{team or '-'}"
        principal_id = secrets.token_hex(8)
        bind.execute(
            sa.insert(principals).values(
                id=principal_id,
                name=name,
                roles=["app"],
                app=app,
                team=team,
                description="created from existing keys by migration 0003",
                created_at=now,
            )
        )
        team_match = keys.c.team.is_(None) if team is None else keys.c.team == team
        bind.execute(
            sa.update(keys).where(keys.c.app == app, team_match).values(principal_id=principal_id)
        )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_api_keys_app")
        batch_op.alter_column("principal_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_foreign_key(
            "fk_api_keys_principal_id_principals", "principals", ["principal_id"], ["id"]
        )
        batch_op.create_index("ix_api_keys_principal_id", ["principal_id"], unique=False)
        batch_op.drop_column("app")
        batch_op.drop_column("team")


def _chain_audit_records() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chain_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("record_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("content_digest", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("content_key_id", sa.String(length=32), nullable=True))
    op.create_table(
        "audit_content",
        sa.Column("chain_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("encryption", sa.String(length=16), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "seq"),
    )
    _chain_existing(op.get_bind())
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        for column in ("chain_id", "prev_hash", "record_hash"):
            batch_op.alter_column(column, existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch_op.drop_column("request_content")
        batch_op.drop_column("response_content")
        batch_op.create_unique_constraint("uq_audit_records_chain_seq", ["chain_id", "seq"])
        batch_op.create_foreign_key(
            "fk_audit_records_chain", "audit_chains", ["chain_id"], ["chain_id"]
        )
    with op.batch_alter_table("audit_content", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_audit_content_record",
            "audit_records",
            ["chain_id", "seq"],
            ["chain_id", "seq"],
        )


def _record_table() -> sa.TableClause:
    typed: dict[str, Any] = {
        "recorded_at": _Time(timezone=True),
        "cost": governance.db.types.ExactDecimal(),
        "stream": sa.Boolean(),
        "usage_estimated": sa.Boolean(),
        "seq": sa.BigInteger(),
        "http_status": sa.Integer(),
        "input_tokens": sa.Integer(),
        "output_tokens": sa.Integer(),
        "policy_version": sa.Integer(),
        "latency_ms": sa.Float(),
        "ttft_ms": sa.Float(),
    }
    names = {"id", "request_content", "response_content", "record_hash", *_HASHED}
    return sa.table("audit_records", *(sa.column(n, typed.get(n, sa.Text())) for n in names))


def _chain_existing(bind: sa.Connection) -> None:
    """Hash existing records into one chain, oldest first (format 1)."""
    records = _record_table()
    content = sa.table(
        "audit_content",
        sa.column("chain_id", sa.String),
        sa.column("seq", sa.BigInteger),
        sa.column("encryption", sa.String),
        sa.column("body", sa.LargeBinary),
    )
    chains = sa.table(
        "audit_chains",
        sa.column("chain_id", sa.String),
        sa.column("format", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("writer", sa.String),
        sa.column("started_at", _Time(timezone=True)),
        sa.column("head_seq", sa.BigInteger),
        sa.column("head_hash", sa.String),
        sa.column("signed_seq", sa.BigInteger),
        sa.column("closed_at", _Time(timezone=True)),
    )
    as_text = (*_JSON, "request_content", "response_content")  # JSON columns, as stored
    text_columns = [sa.cast(records.c[n], sa.Text).label(n) for n in as_text]
    other = [c for c in records.c if c.name not in as_text]
    rows = bind.execute(sa.select(*other, *text_columns).order_by(records.c.id)).mappings().all()
    if not rows:
        return
    now = dt.datetime.now(dt.UTC)
    bind.execute(
        sa.insert(chains).values(
            chain_id=MIGRATED_CHAIN,
            format=_FORMAT,
            kind="migrated",
            writer="migration 0003",
            started_at=now,
            head_seq=0,
            head_hash=chain.GENESIS,
            signed_seq=0,
            closed_at=now,
        )
    )
    head = chain.GENESIS
    for seq, row in enumerate(rows, start=1):
        values = dict(row)
        values.update(chain_id=MIGRATED_CHAIN, seq=seq, prev_hash=head, content_key_id=None)
        request, response = values.pop("request_content"), values.pop("response_content")
        values["content_digest"] = None
        if request not in (None, "null") or response not in (None, "null"):
            body = b'{"request":%s,"response":%s}' % (
                (request or "null").encode(),
                (response or "null").encode(),
            )
            values["content_digest"] = chain.content_digest(body)
            bind.execute(
                sa.insert(content).values(
                    chain_id=MIGRATED_CHAIN, seq=seq, encryption="none", body=body
                )
            )
        head = chain.hash_row(values, _FORMAT)
        bind.execute(
            sa.update(records)
            .where(records.c.id == row["id"])
            .values(
                chain_id=MIGRATED_CHAIN,
                seq=seq,
                prev_hash=values["prev_hash"],
                record_hash=head,
                content_digest=values["content_digest"],
            )
        )
    bind.execute(
        sa.update(chains)
        .where(chains.c.chain_id == MIGRATED_CHAIN)
        .values(head_seq=len(rows), head_hash=head)
    )


def downgrade() -> None:
    raise NotImplementedError(
        "0003 cannot be undone: audit records are hash-chained and their content moved; "
        "restore a backup taken before the upgrade instead"
    )
