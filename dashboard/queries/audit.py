"""The audit log page's reads that the `AuditReader` does not already provide: choices
for the filters, the state of the chains and the latest checkpoint, one record's trace."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from governance.audit.reader import record_dict
from governance.audit.records import Completion
from governance.db.models import AuditChain, AuditCheckpoint, AuditRecord, PolicyVersionRecord
from governance.db.spend_models import SpendDaily
from governance.db.traffic_models import AuditTag

ACTIONS = ("allow", "route", "block")
DESTINATIONS = ("internal", "external")
STATUSES = tuple(c.value for c in Completion)
KINDS = ("admitted", "completed", "admin")


@dataclass(frozen=True, slots=True)
class FilterChoices:
    """The values the filter drop-downs offer (free text is allowed where lists are long)."""

    apps: list[str]
    teams: list[str]
    models: list[str]
    upstreams: list[str]
    policy_versions: list[int]
    pii_entities: list[str]


def filter_choices(sessions: sessionmaker[Session], since: dt.datetime) -> FilterChoices:
    """Apps, teams, models and upstreams from the daily rollup (small), policy versions
    from the policy table, entity types tagged since ``since``."""

    def distinct(column: Any) -> list[str]:
        rows = session.scalars(select(column).distinct().where(column != "")).all()
        return sorted(str(v) for v in rows)

    with sessions() as session:
        versions = session.scalars(select(PolicyVersionRecord.version).distinct()).all()
        entities = session.scalars(
            select(AuditTag.tag)
            .distinct()
            .where(AuditTag.tag.startswith("pii:"), AuditTag.recorded_at >= since)
        ).all()
        return FilterChoices(
            apps=distinct(SpendDaily.app),
            teams=distinct(SpendDaily.team),
            models=distinct(SpendDaily.model),
            upstreams=distinct(SpendDaily.upstream),
            policy_versions=sorted(int(v) for v in versions),
            pii_entities=sorted(tag.removeprefix("pii:") for tag in entities),
        )


@dataclass(frozen=True, slots=True)
class ChainState:
    chain_id: str
    kind: str
    writer: str | None
    head_seq: int
    signed_seq: int
    closed: bool

    @property
    def unsigned(self) -> int:
        return max(0, self.head_seq - self.signed_seq)


@dataclass(frozen=True, slots=True)
class TrailState:
    """What the chains table and the newest checkpoint say, without re-hashing anything
    (a full verification is an explicit action on the audit page)."""

    chains: list[ChainState]
    last_checkpoint_at: dt.datetime | None
    last_checkpoint_key: str | None
    checkpoints: int

    @property
    def records(self) -> int:
        return sum(c.head_seq for c in self.chains)

    @property
    def unsigned(self) -> int:
        return sum(c.unsigned for c in self.chains)


def trail_state(sessions: sessionmaker[Session]) -> TrailState:
    with sessions() as session:
        chains = [
            ChainState(
                row.chain_id,
                row.kind,
                row.writer,
                int(row.head_seq),
                int(row.signed_seq or 0),
                row.closed_at is not None,
            )
            for row in session.scalars(select(AuditChain).order_by(AuditChain.started_at))
        ]
        last = session.scalars(
            select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1)
        ).one_or_none()
        count = session.scalar(select(func.count()).select_from(AuditCheckpoint)) or 0
    return TrailState(
        chains,
        last.created_at if last is not None else None,
        last.key_id if last is not None else None,
        int(count),
    )


def request_records(sessions: sessionmaker[Session], request_id: str) -> list[dict[str, Any]]:
    """Every record of one request (metadata: decision trace, attempts, shadow), in order."""
    with sessions() as session:
        rows = session.scalars(
            select(AuditRecord).where(AuditRecord.request_id == request_id).order_by(AuditRecord.id)
        ).all()
        return [record_dict(r) for r in rows]
