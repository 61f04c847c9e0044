"""Policies page reads: versions with approvals, activation history, canonical diffs."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from governance.db.models import PolicyStateRecord
from governance.policy.store import PolicyStore


def policy_names(sessions: sessionmaker[Session]) -> list[str]:
    """Policies with an activation state, plus any that only have versions."""
    store = PolicyStore(sessions)
    with sessions() as session:
        names = set(session.scalars(select(PolicyStateRecord.name)).all())
    names.update(v.name for v in store.versions())
    return sorted(names)


def versions_frame(store: PolicyStore, name: str) -> pd.DataFrame:
    state = store.state(name)
    rows = []
    for v in sorted(store.versions(name), key=lambda v: -v.version):
        role = (
            "active" if v.version == state.active else "shadow" if v.version == state.shadow else ""
        )
        rows.append(
            {
                "version": v.version,
                "state": role,
                "author": v.author,
                "created": v.created_at,
                "approved by": ", ".join(v.approved_by),
                "comment": v.comment or "",
                "sha256": v.sha256[:12],
            }
        )
    return pd.DataFrame(
        rows, columns=["version", "state", "author", "created", "approved by", "comment", "sha256"]
    )


def history_frame(store: PolicyStore, name: str) -> pd.DataFrame:
    rows = [
        {
            "at": e.at,
            "action": e.action,
            "version": e.version,
            "previous": e.previous_version,
            "by": e.actor,
            "comment": e.comment or "",
        }
        for e in reversed(store.history(name))
    ]
    return pd.DataFrame(rows, columns=["at", "action", "version", "previous", "by", "comment"])
