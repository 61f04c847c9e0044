"""Appending to the shared ``admin`` chain inside another transaction.

Administrative records (a policy activated, a key created, audit content read) are
written by the service making the change, in the same transaction as the change, so the
change and its record commit or fail together. They share one chain; appending takes the
chain's head row lock (an ``UPDATE ... RETURNING``), which serialises admin writers only,
at admin rates. Request records never come here: each proxy process owns its own chain.

Records are hashed with the shared chain's own format (``audit_chains.format``, read by
the same locking statement): the chain was created by migration 0003 with format 1 and
keeps it for good, whatever format new writer chains use.
"""

from __future__ import annotations

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from governance.audit.chain import SHARED_CHAIN
from governance.audit.records import AuditEntry, chained_row
from governance.db.models import AuditChain, AuditRecord


def append_shared(session: Session, entry: AuditEntry) -> int:
    """Append ``entry`` (which carries no content) to the shared chain; return its seq."""
    if entry.request_content is not None or entry.response_content is not None:
        raise ValueError("administrative audit records carry no content")
    locked = session.execute(
        update(AuditChain)
        .where(AuditChain.chain_id == SHARED_CHAIN)
        .values(head_seq=AuditChain.head_seq + 1)
        .returning(AuditChain.head_seq, AuditChain.head_hash, AuditChain.format)
    ).one_or_none()
    if locked is None:
        raise RuntimeError(
            f"the {SHARED_CHAIN!r} audit chain is missing; run `tollhouse db upgrade`"
        )
    seq, prev_hash, fmt = locked
    row = chained_row(entry, SHARED_CHAIN, seq, prev_hash, fmt=fmt)
    session.execute(insert(AuditRecord), [row])
    session.execute(
        update(AuditChain)
        .where(AuditChain.chain_id == SHARED_CHAIN)
        .values(head_hash=row["record_hash"])
    )
    return seq
