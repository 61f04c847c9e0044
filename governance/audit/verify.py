"""Re-computing the audit chains and checking the signed checkpoints.

Every check the document docs/audit-format.md describes, in one pass per chain ordered
by sequence number, streaming rows (memory stays flat however long the trail). The
report names each problem's chain, sequence number, record id and request id, and which
check failed: ``chain`` (a chain without its ``audit_chains`` row, or whose row names a
hash format this version does not know), ``seq`` (a gap), ``record_hash`` (a field
changed), ``prev_hash`` (a broken link: a record removed, inserted or moved), ``content``
(stored content changed, or missing without a purge or forget that explains it),
``head`` (records missing at the end of a chain), ``checkpoint`` (a signature, a link
between checkpoints, or a signed head that the chain no longer has), ``anchor`` (an
exported checkpoint that the database no longer holds).

Each record is hashed with its chain's format (``audit_chains.format``). Where that is
unknown (no row, or a format number not in `FORMATS`) the chain is reported, and each of
its records is accepted if its stored hash matches under any known format.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Engine, Text, and_, cast, func, select, type_coerce
from sqlalchemy.types import NullType

from governance.audit.chain import (
    FORMATS,
    GENESIS,
    HASHED_FIELDS,
    JSON_FIELDS,
    SHARED_CHAIN,
    hashed_fields,
    record_hash,
)
from governance.audit.checkpoint import Checkpoint, iter_checkpoints, verify_signature
from governance.db.models import AuditChain, AuditContent, AuditRecord

ERASURE_ENDPOINTS = ("audit.purge", "audit.forget")


@dataclass(frozen=True, slots=True)
class Problem:
    check: str
    detail: str
    chain_id: str | None = None
    seq: int | None = None
    record_id: int | None = None
    request_id: str | None = None

    def describe(self) -> str:
        where = []
        if self.chain_id is not None:
            where.append(f"chain {self.chain_id}")
        if self.seq is not None:
            where.append(f"seq {self.seq}")
        if self.record_id is not None:
            where.append(f"record id {self.record_id}")
        if self.request_id is not None:
            where.append(f"request {self.request_id}")
        place = ", ".join(where) or "trail"
        return f"{place}: [{self.check}] {self.detail}"


@dataclass(slots=True)
class VerifyReport:
    chains: int = 0
    records: int = 0
    contents: int = 0
    checkpoints: int = 0
    unsigned_records: int = 0  # records above the last signed head of their chain
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None


@dataclass(frozen=True, slots=True)
class _Erasures:
    """Purges and forgets recorded on the shared chain: content they explain may be gone."""

    purged_before: dt.datetime | None
    forgotten_apps: Mapping[str, dt.datetime]
    forgotten_users: Mapping[str, dt.datetime]

    def explain(self, recorded_at: dt.datetime, app: str, end_user: str | None) -> bool:
        if self.purged_before is not None and recorded_at < self.purged_before:
            return True
        at = self.forgotten_apps.get(app)
        if at is not None and recorded_at <= at:
            return True
        at = self.forgotten_users.get(end_user) if end_user is not None else None
        return at is not None and recorded_at <= at


# The hashed columns of every format (each format's are a prefix) as the driver returns
# them (no SQLAlchemy type processing, which would cost more than the hash); JSON columns
# as their stored text.
_COLUMNS = [
    cast(AuditRecord.__table__.c[name], Text).label(name)
    if name in JSON_FIELDS
    else type_coerce(AuditRecord.__table__.c[name], NullType()).label(name)
    for name in HASHED_FIELDS
]
_N = len(HASHED_FIELDS)
_SEQ = HASHED_FIELDS.index("seq")
_PREV = HASHED_FIELDS.index("prev_hash")
_REQUEST = HASHED_FIELDS.index("request_id")
_RECORDED = HASHED_FIELDS.index("recorded_at")
_APP = HASHED_FIELDS.index("app")
_USER = HASHED_FIELDS.index("end_user")
_DIGEST = HASHED_FIELDS.index("content_digest")
# (format, number of hashed fields) of every known format, tried for a chain whose format
# is unknown.
_ANY_FORMAT = tuple((fmt, len(hashed_fields(fmt))) for fmt in sorted(FORMATS))


def _known(fmt: Any) -> bool:
    return type(fmt) is int and fmt in FORMATS


def _formats(fmt: Any) -> tuple[tuple[int, int], ...]:
    """The formats to check a chain's records with: its own, or every one if unknown."""
    return ((fmt, len(hashed_fields(fmt))),) if _known(fmt) else _ANY_FORMAT


def verify_trail(
    engine: Engine,
    trusted: Mapping[str, Ed25519PublicKey],
    *,
    since: dt.datetime | None = None,
    anchors: Iterable[Checkpoint] = (),
    max_problems: int = 100,
    batch: int = 5000,
) -> VerifyReport:
    """Verify every chain (from ``since`` on, if given) and every checkpoint."""
    report = VerifyReport()
    signed = _check_checkpoints(engine, dict(trusted), anchors, report)
    with engine.connect() as connection:
        erasures = _erasures(connection)
        listed = {
            chain_id: (head_seq, head_hash, fmt)
            for chain_id, head_seq, head_hash, fmt in connection.execute(
                select(
                    AuditChain.chain_id,
                    AuditChain.head_seq,
                    AuditChain.head_hash,
                    type_coerce(AuditChain.format, NullType()),  # as stored, unconverted
                )
            )
        }
        recorded = set(connection.execute(select(AuditRecord.chain_id).distinct()).scalars())
        chains = sorted(listed.keys() | signed.keys() | recorded)
        for chain_id in chains:
            if chain_id not in listed:
                report.problems.append(
                    Problem(
                        "chain",
                        "this chain has records or signed heads but no audit_chains row "
                        "(the chain was removed or forged)",
                        chain_id,
                    )
                )
            elif not _known(fmt := listed[chain_id][2]):
                report.problems.append(
                    Problem(
                        "chain",
                        f"the chain's audit_chains row names hash format {fmt!r}, which this "
                        f"version does not know (it knows {sorted(FORMATS)}): the row was "
                        "changed, or the trail needs a newer Tollhouse to verify",
                        chain_id,
                    )
                )
        for chain_id in chains:
            head_seq, head_hash, fmt = listed.get(chain_id, (None, None, None))
            report.chains += 1
            _verify_chain(
                connection,
                chain_id,
                head_seq,
                head_hash,
                _formats(fmt),
                signed.get(chain_id, {}),
                erasures,
                since,
                report,
                batch,
            )
            if len(report.problems) >= max_problems:
                break
    del report.problems[max_problems:]
    return report


def _check_checkpoints(
    engine: Engine,
    trusted: dict[str, Ed25519PublicKey],
    anchors: Iterable[Checkpoint],
    report: VerifyReport,
) -> dict[str, dict[int, tuple[str, int]]]:
    """Check signatures and links; return chain -> {seq: (hash, checkpoint id)} signed."""
    signed: dict[str, dict[int, tuple[str, int]]] = defaultdict(dict)
    stored: dict[str, Checkpoint] = {}
    previous = GENESIS
    for checkpoint in iter_checkpoints(engine):
        report.checkpoints += 1
        stored[checkpoint.digest] = checkpoint
        where = f"checkpoint #{checkpoint.id}"
        wrong = verify_signature(checkpoint, trusted)
        if wrong is not None:
            report.problems.append(Problem("checkpoint", f"{where}: {wrong}"))
            previous = checkpoint.digest  # judge the next link on its own
            continue
        if checkpoint.previous != previous:
            report.problems.append(
                Problem(
                    "checkpoint",
                    f"{where} names previous {checkpoint.previous[:16]}…, but the checkpoint "
                    f"before it has digest {previous[:16]}… (a checkpoint was removed)",
                )
            )
        previous = checkpoint.digest
        for head in checkpoint.heads:
            signed[head.chain_id][head.seq] = (head.hash, checkpoint.id)
    for anchor in anchors:
        if stored.get(anchor.digest) is None:
            report.problems.append(
                Problem(
                    "anchor",
                    f"exported checkpoint #{anchor.id} (digest {anchor.digest[:16]}…) is not "
                    "in the database: checkpoints were removed or rewritten",
                )
            )
    return signed


def _erasures(connection: Connection) -> _Erasures:
    rows = connection.execute(
        select(AuditRecord.endpoint, AuditRecord.recorded_at, AuditRecord.decision).where(
            AuditRecord.chain_id == SHARED_CHAIN,
            AuditRecord.kind == "admin",
            AuditRecord.endpoint.in_(ERASURE_ENDPOINTS),
        )
    ).all()
    purged: dt.datetime | None = None
    apps: dict[str, dt.datetime] = {}
    users: dict[str, dt.datetime] = {}
    for endpoint, recorded_at, details in rows:
        if not isinstance(details, dict):
            continue  # malformed: explains nothing
        if endpoint == "audit.purge":
            cutoff = _aware(details.get("older_than"))
            if cutoff is not None:
                purged = cutoff if purged is None else max(purged, cutoff)
            continue
        app, user = details.get("app"), details.get("end_user")
        if isinstance(app, str) and user is None:
            apps[app] = max(recorded_at, apps.get(app, recorded_at))
        elif isinstance(user, str) and app is None:
            users[user] = max(recorded_at, users.get(user, recorded_at))
    return _Erasures(purged, apps, users)


def _aware(text: Any) -> dt.datetime | None:
    """An ISO 8601 time with a zone, or None (a zone-less or malformed one explains
    nothing)."""
    if not isinstance(text, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _start(connection: Connection, chain_id: str, since: dt.datetime | None) -> int:
    """The first seq to read: 1, or the record before the first one since ``since``."""
    if since is None:
        return 1
    first = connection.execute(
        select(func.min(AuditRecord.seq)).where(
            AuditRecord.chain_id == chain_id, AuditRecord.recorded_at >= since
        )
    ).scalar_one_or_none()
    return 1 if first is None else max(1, int(first) - 1)


def _verify_chain(
    connection: Connection,
    chain_id: str,
    head_seq: int | None,
    head_hash: str | None,
    formats: tuple[tuple[int, int], ...],
    signed: Mapping[int, tuple[str, int]],
    erasures: _Erasures,
    since: dt.datetime | None,
    report: VerifyReport,
    batch: int,
) -> None:
    start = _start(connection, chain_id, since)
    query = (
        select(*_COLUMNS, AuditRecord.record_hash, AuditRecord.id, AuditContent.body)
        .outerjoin(
            AuditContent,
            and_(
                AuditContent.chain_id == AuditRecord.chain_id, AuditContent.seq == AuditRecord.seq
            ),
        )
        .where(AuditRecord.chain_id == chain_id, AuditRecord.seq >= start)
        .order_by(AuditRecord.seq)
    )
    problems = report.problems
    expected = start
    prev: str | None = GENESIS if start == 1 else None  # None: trust the first link
    last_seq, last_hash = start - 1, GENESIS
    records = contents = 0
    result = connection.execution_options(yield_per=batch).execute(query)
    for row in result:
        values: Any = row
        seq = values[_SEQ]
        stored_hash = values[_N]

        def problem(check: str, detail: str, _v: Any = values) -> Problem:
            return Problem(check, detail, chain_id, _v[_SEQ], _v[_N + 1], _v[_REQUEST])

        records += 1
        if seq != expected:
            missing = f"seq {expected}" if seq == expected + 1 else f"seq {expected} to {seq - 1}"
            problems.append(problem("seq", f"{missing} missing before this record (deleted)"))
        elif prev is not None and values[_PREV] != prev:
            problems.append(
                problem(
                    "prev_hash",
                    f"does not link to the record before it (prev_hash {values[_PREV][:16]}…, "
                    f"record {seq - 1} has hash {prev[:16]}…): a record was inserted, removed "
                    "or moved",
                )
            )
        if not _hash_matches(values, stored_hash, formats):
            problems.append(
                problem(
                    "record_hash",
                    "the record's fields do not match its hash: a field was changed after the "
                    "record was written",
                )
            )
        body = values[_N + 2]
        digest = values[_DIGEST]
        if body is not None:
            contents += 1
            if digest is None or hashlib.sha256(body).hexdigest() != digest:
                problems.append(
                    problem("content", "the stored content does not match the record's digest")
                )
        elif digest is not None and not erasures.explain(
            _moment(values[_RECORDED]), values[_APP], values[_USER]
        ):
            problems.append(
                problem("content", "the content is missing and no purge or forget covers it")
            )
        claim = signed.get(seq)
        if claim is not None and claim[0] != stored_hash:
            problems.append(
                problem(
                    "checkpoint",
                    f"checkpoint #{claim[1]} signed hash {claim[0][:16]}… for this record; it "
                    f"now has {stored_hash[:16]}…: the chain was rewritten",
                )
            )
        prev = stored_hash
        expected = seq + 1
        last_seq, last_hash = seq, stored_hash
    report.records += records
    report.contents += contents
    top_signed = max(signed, default=0)
    report.unsigned_records += max(0, last_seq - max(top_signed, start - 1))
    for lost in sorted(seq for seq in signed if seq > last_seq):
        problems.append(
            Problem(
                "checkpoint",
                f"checkpoint #{signed[lost][1]} signed this record, but the chain ends at "
                f"seq {last_seq}: records were removed from its end",
                chain_id,
                lost,
            )
        )
    if head_seq is None or head_hash is None:
        return  # reported as a missing chain row
    if head_seq != last_seq or head_hash != last_hash:
        problems.append(
            Problem(
                "head",
                f"the chain's head says seq {head_seq} ({head_hash[:16]}…) but its last record "
                f"is seq {last_seq} ({last_hash[:16]}…): records were removed from its end",
                chain_id,
                head_seq,
            )
        )


def _hash_matches(values: Any, stored_hash: Any, formats: tuple[tuple[int, int], ...]) -> bool:
    """Whether ``stored_hash`` is the hash of ``values`` under one of ``formats``
    ((format, number of fields) pairs; one, the chain's, unless its format is unknown).

    The columns a format does not hash (those of later formats) must be empty: Tollhouse
    never fills them on such a chain, and the hash would not protect a value there."""
    for fmt, count in formats:
        if any(value is not None for value in values[count:_N]):
            continue
        try:
            if record_hash(values[:count], fmt) == stored_hash:
                return True
        except (TypeError, ValueError, ArithmeticError):  # a value of the wrong type
            continue
    return False


def _moment(value: Any) -> dt.datetime:
    """A raw ``recorded_at`` (SQLite text or a driver datetime) as an aware UTC time."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
