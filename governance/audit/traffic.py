"""Adding request records to the hourly traffic rollup and tagging them for search.

`TrafficLedger` is one of the audit writer's batch ledgers: it runs inside the
transaction that inserts the records, so `TrafficHourly` always equals the sums over the
``completed`` records and `AuditTag` holds exactly the tags of the stored records.
Like the spend ledger, a batch is summed in memory, then every affected rollup row gets
one atomic upsert (``x = x + delta``) in key order, so writers of several processes
never lose a count or deadlock. Migration 0006 fills both tables for older records with
the same code.

What a record contributes, from its ``decision`` (`Decision.trace`):

- ``action``: the policy's ``allow``/``route``/``block``; ``''`` without a decision
  (refused before policy evaluation).
- PII: ``pii`` maps each entity type found (above threshold) to a count.
- redacted: the prompt was changed on its way to the record's ``destination``, i.e. the
  decision's ``redaction[destination]`` masks or pseudonymises an entity type that was
  found. The engine lists there only found types it does not ``allow``
  (`governance.policy.redaction.redacted_texts` applies exactly those), so without a
  destination (an ``admitted`` record, a blocked request) nothing left and nothing was
  redacted.

Only ``admitted`` and ``completed`` records are request records; ``admin`` records reuse
``decision`` for their details and are neither counted nor tagged.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from sqlalchemy import Connection, Table, insert

from governance.db.bulk import BulkStatement
from governance.db.traffic_models import LATENCY_BOUNDS_MS, LATENCY_BUCKETS, AuditTag, TrafficHourly
from governance.db.upsert import AddingUpserts
from governance.spend.ledger import Countable

REQUEST_KINDS = frozenset({"admitted", "completed"})
REDACTING = frozenset({"mask", "pseudonymize"})

HourKey = tuple[dt.datetime, str, str, str, str, str, str, str, str]
_HOUR_KEYS = (
    "hour",
    "app",
    "team",
    "model",
    "upstream",
    "deployment_model",
    "destination",
    "status",
    "action",
)
_INSERT_TAGS = BulkStatement(
    insert(cast(Table, AuditTag.__table__)), ("tag", "chain_id", "seq", "recorded_at")
)


class Traffic(Countable, Protocol):
    """What the ledger reads of a record (a `ChainedEntry` or a stored row): what the
    spend ledger reads, and the record's place in its chain, attempts, timings and
    decision."""

    @property
    def chain_id(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def attempts(self) -> Sequence[Any] | None: ...
    @property
    def latency_ms(self) -> float | None: ...
    @property
    def ttft_ms(self) -> float | None: ...
    @property
    def decision(self) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True, slots=True)
class PolicyFacts:
    """What a record's decision says, in the terms the rollup and the tags use."""

    action: str  # '' without a decision
    pii: Mapping[str, int]  # entity type -> count, counts > 0 only
    redacted: bool

    @classmethod
    def of(cls, decision: Mapping[str, Any] | None, destination: str | None) -> PolicyFacts:
        if not decision:
            return cls("", {}, False)
        action = decision.get("action")
        found = decision.get("pii")
        pii = {
            entity: count
            for entity, count in (found.items() if isinstance(found, Mapping) else ())
            if isinstance(count, int) and count > 0
        }
        return cls(
            action if isinstance(action, str) else "", pii, _redacted(decision, destination, pii)
        )

    def tags(self) -> list[str]:
        """``action:<action>``, ``pii:<TYPE>`` per type found, ``redacted``."""
        tags = [f"action:{self.action}"] if self.action else []
        tags.extend(f"pii:{entity}" for entity in sorted(self.pii))
        if self.redacted:
            tags.append("redacted")
        return tags


def _redacted(decision: Mapping[str, Any], destination: str | None, pii: Mapping[str, int]) -> bool:
    """Whether the redaction for ``destination`` masks or pseudonymises a found type."""
    redaction = decision.get("redaction")
    if destination is None or not isinstance(redaction, Mapping):
        return False
    actions = redaction.get(destination)
    if not isinstance(actions, Mapping):
        return False
    return any(entity in pii and how in REDACTING for entity, how in actions.items())


def latency_bucket(latency_ms: float) -> int:
    """The histogram bucket of a latency: the first whose bound it does not exceed."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)


def hour_of(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(slots=True)
class TrafficSums:
    """One rollup row's counters, summed over completed records."""

    requests: int = 0
    redacted: int = 0
    pii_entities: int = 0
    retried: int = 0
    latency_count: int = 0
    latency_ms_sum: float = 0.0
    ttft_count: int = 0
    ttft_ms_sum: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))

    def add(self, record: Traffic, facts: PolicyFacts) -> None:
        self.requests += 1
        self.redacted += facts.redacted
        self.pii_entities += sum(facts.pii.values())
        self.retried += len(record.attempts or ()) > 1
        if record.latency_ms is not None:
            self.latency_count += 1
            self.latency_ms_sum += record.latency_ms
            self.buckets[latency_bucket(record.latency_ms)] += 1
        if record.ttft_ms is not None:
            self.ttft_count += 1
            self.ttft_ms_sum += record.ttft_ms

    def merge(self, row: Any) -> None:
        """Add a rollup row's counters (a `TrafficHourly` or a row of summed columns
        named like it): for readers that combine hours or dimensions."""
        self.requests += int(row.requests)
        self.redacted += int(row.redacted)
        self.pii_entities += int(row.pii_entities)
        self.retried += int(row.retried)
        self.latency_count += int(row.latency_count)
        self.latency_ms_sum += float(row.latency_ms_sum or 0.0)
        self.ttft_count += int(row.ttft_count)
        self.ttft_ms_sum += float(row.ttft_ms_sum or 0.0)
        for i, name in enumerate(LATENCY_BUCKETS):
            self.buckets[i] += int(getattr(row, name) or 0)

    def as_row(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "redacted": self.redacted,
            "pii_entities": self.pii_entities,
            "retried": self.retried,
            "latency_count": self.latency_count,
            "latency_ms_sum": self.latency_ms_sum,
            "ttft_count": self.ttft_count,
            "ttft_ms_sum": self.ttft_ms_sum,
            **dict(zip(LATENCY_BUCKETS, self.buckets, strict=True)),
        }


@dataclass(slots=True)
class TrafficTotals:
    """A batch summed per rollup row, and the tags of its records."""

    hourly: dict[HourKey, TrafficSums] = field(default_factory=dict)
    tags: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, records: Iterable[Traffic]) -> TrafficTotals:
        totals = cls()
        for record in records:
            totals.add(record)
        return totals

    def add(self, record: Traffic) -> None:
        if record.kind not in REQUEST_KINDS:
            return
        facts = PolicyFacts.of(record.decision, record.destination)
        self.tags.extend(
            {
                "tag": tag,
                "chain_id": record.chain_id,
                "seq": record.seq,
                "recorded_at": record.recorded_at,
            }
            for tag in facts.tags()
        )
        if record.kind != "completed":
            return
        key: HourKey = (
            hour_of(record.recorded_at),
            record.app,
            record.team or "",
            record.requested_model or "",
            record.upstream or "",
            record.deployment_model or "",
            record.destination or "",
            record.status,
            facts.action,
        )
        self.hourly.setdefault(key, TrafficSums()).add(record, facts)


class TrafficLedger:
    """Applies `TrafficTotals`: one upsert for the rollup, one insert for the tags."""

    def __init__(self) -> None:
        self._upserts = AddingUpserts()

    def apply(self, connection: Connection, records: Sequence[Traffic]) -> None:
        self.apply_totals(connection, TrafficTotals.of(records))

    def apply_totals(self, connection: Connection, totals: TrafficTotals) -> None:
        if totals.hourly:
            rows = [
                {**dict(zip(_HOUR_KEYS, key, strict=True)), **sums.as_row()}
                for key, sums in sorted(totals.hourly.items())
            ]
            self._upserts.execute(connection, TrafficHourly, _HOUR_KEYS, rows)
        _INSERT_TAGS.execute(connection, totals.tags)
