"""The verifier written from docs/audit-format.md alone agrees with `verify_trail`.

Each test builds a realistic trail in a fresh database (three writer chains in hash
format 2, the admin chain in format 1, three signed checkpoints, an unsigned tail),
tampers with it the way an insider would (SQL straight into the tables), and runs both
verifiers: both must accept the untouched trail and every legitimate erasure, and both
must reject every tampering, naming the same (chain, seq) first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Engine, delete, insert, select, text, update

from governance.access import Principal
from governance.audit import AuditEntry, AuditWriter, RecordKind
from governance.audit.admin import admin_entry
from governance.audit.chain import FORMAT, GENESIS, SHARED_CHAIN, hash_row
from governance.audit.checkpoint import (
    Checkpointer,
    generate_signing_key,
    key_id_of,
    load_signing_key,
)
from governance.audit.retention import Retention
from governance.audit.shared import append_shared
from governance.audit.vault import DataKeys, MasterKey
from governance.audit.verify import VerifyReport, verify_trail
from governance.db import make_engine, session_factory
from governance.db.models import AuditChain, AuditCheckpoint, AuditContent, AuditRecord
from tests.audit_format.independent_verifier import Result, record_hash, verify

RECORDS = AuditRecord.__table__
CONTENT = AuditContent.__table__
CHAINS = AuditChain.__table__
CHECKPOINTS = AuditCheckpoint.__table__
OPERATOR = Principal.operator("test")
NOW = dt.datetime.now(dt.UTC)
BASE = NOW - dt.timedelta(days=12)  # records every 2 h from here: about 9 days in all
PER_PHASE = 9  # entries per writer per phase; 4 phases, the last one left unsigned


# -- building the trail ----------------------------------------------------------------
def make_entry(n: int, *, app: str, retention: str, end_user: str | None) -> AuditEntry:
    admitted = n % 4 == 0
    failed = n % 5 == 3
    return AuditEntry(
        request_id=f"req_{n:04d}",
        kind=RecordKind.ADMITTED if admitted else RecordKind.COMPLETED,
        recorded_at=BASE.replace(microsecond=0)
        + dt.timedelta(hours=2 * n, microseconds=0 if n % 10 == 0 else (n * 7919) % 1_000_000),
        app=app,
        team=None if n % 3 == 0 else "équipe-ß",
        key_id=f"k{n % 2}",
        end_user=end_user,
        endpoint="chat.completions",
        requested_model="gpt-4o-mini",
        stream=n % 2 == 1,
        upstream=None if admitted else "primary",
        deployment_model=None if admitted else "gpt-4o-mini-2024-07-18",
        destination=None if admitted else ("external" if n % 2 else "internal"),
        attempts=None
        if admitted
        else [{"latency_ms": 10.25, "status": 502, "upstream": "primary"}, {"status": 200}]
        if n % 3 == 1
        else [],
        response_id=None if admitted else f"chatcmpl-{n}",
        response_model=None if admitted else "gpt-4o-mini-2024-07-18",
        system_fingerprint=None if n % 2 else "fp_44709d6fcb",
        status="upstream_error" if failed else "ok",
        http_status=None if admitted else (502 if failed else 200),
        error_type="upstream_timeout" if failed else None,
        error_message="Zeitüberschreitung beim Upstream: 😕" if failed else None,
        finish_reasons=None if admitted or failed else ["length", "stop"][: 1 + n % 2],
        input_tokens=None if admitted else 3 * n,
        # format 2's fields: cached tokens sometimes absent, sometimes 0
        cached_input_tokens=None if admitted or n % 3 == 2 else (0 if n % 5 == 0 else n),
        price_id=None if admitted else 1000 + n % 4,
        output_tokens=None if admitted or failed else 5 * n,
        usage_estimated=n % 2 == 0,
        cost=None if admitted else Decimal(n) * Decimal("0.000000123457"),
        currency=None if admitted else "USD",
        latency_ms=None if admitted else 100 + 1.37 * n + 0.0004,
        ttft_ms=12.5 + n if n % 2 == 1 and not admitted else None,
        content_retention=retention,
        request_content={"messages": [{"content": f"Grüße #{n} 👋", "role": "user"}]}
        if retention != "none"
        else None,
        response_content={"n": n, "text": "Antwort ✓"} if retention != "none" else None,
        policy_name="default",
        policy_version=3,
        decision={"action": "allow", "note": "Zoë ✓", "rules": ["defaults", "pii"], "score": 0.25},
        shadow={"action": "deny", "rules": []} if n % 4 == 1 else None,
    )


@dataclass
class Trail:
    url: str
    engine: Engine
    chains: list[str]  # the writer chains: encrypted content, redacted content, mixed
    public_pem: bytes
    public_key: Ed25519PublicKey
    checkpoints: list[tuple[int, dict[str, int]]]  # (id, chain -> signed seq), oldest first

    def signed(self, chain_id: str, index: int) -> int:
        return self.checkpoints[index][1][chain_id]


def build_trail(url: str, tmp_path: Path) -> Trail:
    engine = make_engine(url)
    private_pem, public_pem = generate_signing_key()
    (tmp_path / "signing.pem").write_bytes(private_pem)
    signer = Checkpointer(engine, load_signing_key(tmp_path / "signing.pem"))
    sessions = session_factory(engine)
    retention = Retention(sessions)
    writers = [
        AuditWriter(engine, batch_max=5, data_keys=DataKeys(MasterKey(os.urandom(32)))),
        AuditWriter(engine, batch_max=5),
        AuditWriter(engine, batch_max=5),
    ]
    kinds = [("full", "full"), ("redacted", "redacted"), ("redacted", "none")]
    users = ["alice", "bob", None]
    for writer in writers:
        writer.start()
    checkpoints: list[tuple[int, dict[str, int]]] = []
    n = 0
    try:
        for phase in range(4):
            for w, writer in enumerate(writers):
                entries = []
                for i in range(PER_PHASE):
                    n += 1
                    entries.append(
                        make_entry(
                            n,
                            app="billing" if i % 2 else "search",
                            retention=kinds[w][i % 2] if i % 4 != 3 else "none",
                            end_user=users[i % 3],
                        )
                    )
                writer.write_blocking(entries[:4], timeout_s=10)
                writer.write_blocking(entries[4:], timeout_s=10)
            if phase == 0:  # admin records that erase nothing
                assert retention.purge(OPERATOR, older_than=dt.timedelta(days=3650)) == 0
            elif phase == 1:
                retention.forget(OPERATOR, end_user="nobody@example.com")
            elif phase == 2:
                with sessions.begin() as session:
                    append_shared(
                        session,
                        admin_entry(
                            endpoint="policy.activate",
                            actor=OPERATOR,
                            recorded_at=dt.datetime.now(dt.UTC),
                            details={"comment": "neue Version ✓", "from": 2, "to": 3},
                            policy_name="default",
                            policy_version=3,
                        ),
                    )
            if phase < 3:
                checkpoint = signer.write()
                assert checkpoint is not None
                checkpoints.append((checkpoint.id, {h.chain_id: h.seq for h in checkpoint.heads}))
    finally:
        for writer in writers:
            writer.close()
    public = serialization.load_pem_public_key(public_pem)
    assert isinstance(public, Ed25519PublicKey)
    return Trail(url, engine, [w.chain_id for w in writers], public_pem, public, checkpoints)


@pytest.fixture
def trail(fresh_database_url: str, tmp_path: Path) -> Iterator[Trail]:
    built = build_trail(fresh_database_url, tmp_path)
    yield built
    built.engine.dispose()


# -- running both verifiers ------------------------------------------------------------
Location = tuple[str | None, int | None]


def run_both(trail: Trail) -> tuple[Result, VerifyReport]:
    mine = verify(trail.url, [trail.public_pem])
    reference = verify_trail(trail.engine, {key_id_of(trail.public_key): trail.public_key})
    return mine, reference


def firsts(mine: Result, reference: VerifyReport) -> tuple[Location, Location]:
    assert mine.problems and reference.first is not None
    return mine.problems[0][:2], (reference.first.chain_id, reference.first.seq)


def assert_both_pass(trail: Trail) -> None:
    mine, reference = run_both(trail)
    assert reference.ok, [p.describe() for p in reference.problems]
    assert mine.ok, mine.problems
    assert (mine.records, mine.checkpoints) == (reference.records, reference.checkpoints)


def assert_both_fail_at(trail: Trail, expected: Location) -> None:
    mine, reference = run_both(trail)
    assert not reference.ok and not mine.ok, (mine.problems, reference.problems)
    assert (mine.records, mine.checkpoints) == (reference.records, reference.checkpoints)
    mine_first, reference_first = firsts(mine, reference)
    detail = (mine.problems[:3], [p.describe() for p in reference.problems[:3]])
    assert reference_first == expected, detail
    assert mine_first == reference_first, detail


# -- tampering helpers -----------------------------------------------------------------
def is_pg(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def record(connection: Connection, chain_id: str, seq: int) -> dict[str, Any]:
    row = connection.execute(
        select(RECORDS).where(RECORDS.c.chain_id == chain_id, RECORDS.c.seq == seq)
    ).one()
    return dict(row._mapping)


def pick(trail: Trail, connection: Connection, *conditions: Any) -> tuple[str, int]:
    """A record below the first checkpoint's head, past seq 1, meeting ``conditions``."""
    for chain_id in trail.chains:
        seq = connection.execute(
            select(RECORDS.c.seq)
            .where(
                RECORDS.c.chain_id == chain_id,
                RECORDS.c.seq > 1,
                RECORDS.c.seq <= trail.signed(chain_id, 0),
                *conditions,
            )
            .order_by(RECORDS.c.seq)
            .limit(1)
        ).scalar_one_or_none()
        if seq is not None:
            return chain_id, seq
    raise AssertionError("the trail has no record to tamper with")


def set_head(connection: Connection, chain_id: str) -> None:
    """What a careful attacker does after editing a chain: point its head at the end."""
    last = connection.execute(
        select(RECORDS.c.seq, RECORDS.c.record_hash)
        .where(RECORDS.c.chain_id == chain_id)
        .order_by(RECORDS.c.seq.desc())
        .limit(1)
    ).one()
    connection.execute(
        update(CHAINS)
        .where(CHAINS.c.chain_id == chain_id)
        .values(head_seq=last[0], head_hash=last[1])
    )


def take_content(connection: Connection, chain_id: str, *seqs: int) -> dict[int, dict]:
    """Remove (and return) content rows, so the records they hang on can be moved."""
    rows = connection.execute(
        select(CONTENT).where(CONTENT.c.chain_id == chain_id, CONTENT.c.seq.in_(seqs))
    ).all()
    connection.execute(
        delete(CONTENT).where(CONTENT.c.chain_id == chain_id, CONTENT.c.seq.in_(seqs))
    )
    return {row.seq: dict(row._mapping) for row in rows}


# -- field changes: one column of one signed record ------------------------------------
FIELD_CHANGES: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "text": ("app", lambda v: v + "-x"),
    "text to NULL": ("team", lambda v: None),
    "non-ASCII text": ("error_message", lambda v: v.replace("ü", "u")),
    "prev_hash": ("prev_hash", lambda v: v[:-1] + ("1" if v[-1] == "0" else "0")),
    "integer": ("input_tokens", lambda v: v + 1),
    "integer http_status": ("http_status", lambda v: 201),
    "boolean": ("stream", lambda v: not v),
    "boolean usage_estimated": ("usage_estimated", lambda v: not v),
    "timestamp (1 µs)": ("recorded_at", lambda v: v + dt.timedelta(microseconds=1)),
    "cost (1e-12)": ("cost", lambda v: v + Decimal("0.000000000001")),
    "float": ("latency_ms", lambda v: v + 0.01),
    "float to NULL": ("ttft_ms", lambda v: None),
    "JSON list": ("attempts", lambda v: [*v, {"status": 200, "upstream": "forged"}]),
    "JSON dict": ("decision", lambda v: {**v, "action": "deny"}),
    "JSON to NULL": ("shadow", lambda v: None),
    "content_digest": ("content_digest", lambda v: hashlib.sha256(b"other").hexdigest()),
    "content_key_id": ("content_key_id", lambda v: "0" * 24),
    "policy_version": ("policy_version", lambda v: v + 1),
    "format 2 cached_input_tokens": ("cached_input_tokens", lambda v: v + 1),
    "format 2 cached_input_tokens to NULL": ("cached_input_tokens", lambda v: None),
    "format 2 price_id": ("price_id", lambda v: v + 1),
    "format 2 price_id to NULL": ("price_id", lambda v: None),
}


@pytest.mark.parametrize("change", FIELD_CHANGES, ids=list(FIELD_CHANGES))
def test_a_changed_field_is_found_by_both(trail: Trail, change: str) -> None:
    column, new_value = FIELD_CHANGES[change]
    with trail.engine.begin() as connection:
        chain_id, seq = pick(trail, connection, RECORDS.c[column].is_not(None))
        old = record(connection, chain_id, seq)[column]
        connection.execute(
            update(RECORDS)
            .where(RECORDS.c.chain_id == chain_id, RECORDS.c.seq == seq)
            .values({column: new_value(old)})
        )
    assert_both_fail_at(trail, (chain_id, seq))


@pytest.mark.parametrize("column", ["cached_input_tokens", "price_id"])
def test_a_changed_format_2_field_is_a_record_hash_problem_for_both(
    trail: Trail, column: str
) -> None:
    """The two fields format 2 adds are covered by the hash of a format-2 chain's records."""
    with trail.engine.begin() as connection:
        chain_id, seq = pick(trail, connection, RECORDS.c[column] > 0)
        connection.execute(
            update(RECORDS)
            .where(RECORDS.c.chain_id == chain_id, RECORDS.c.seq == seq)
            .values({column: RECORDS.c[column] - 1})
        )
    assert_both_fail_at(trail, (chain_id, seq))
    mine, reference = run_both(trail)
    assert reference.first is not None and reference.first.check == "record_hash"
    assert mine.problems[0] == (chain_id, seq, "record_hash does not match the record")


def test_json_reformatted_with_the_same_value_is_found_by_both(trail: Trail) -> None:
    """The hash covers the stored JSON text, not the value: re-serialising is a change."""
    with trail.engine.begin() as connection:
        chain_id, seq = pick(trail, connection, RECORDS.c.decision.is_not(None))
        stored = connection.execute(
            text(
                "SELECT CAST(decision AS TEXT) FROM audit_records WHERE chain_id = :c AND seq = :s"
            ),
            {"c": chain_id, "s": seq},
        ).scalar_one()
        spaced = json.dumps(json.loads(stored), sort_keys=True)  # ", " and ": ", \u escapes
        assert spaced != stored and json.loads(spaced) == json.loads(stored)
        value = "CAST(:v AS json)" if is_pg(connection) else ":v"
        connection.execute(
            text(f"UPDATE audit_records SET decision = {value} WHERE chain_id = :c AND seq = :s"),  # noqa: S608
            {"v": spaced, "c": chain_id, "s": seq},
        )
    assert_both_fail_at(trail, (chain_id, seq))


def test_json_null_text_counts_as_absent_for_both(trail: Trail) -> None:
    """Section 3: a stored JSON text of exactly ``null`` hashes like SQL NULL."""
    with trail.engine.begin() as connection:
        chain_id, seq = pick(trail, connection, RECORDS.c.shadow.is_(None))
        null = "CAST('null' AS json)" if is_pg(connection) else "'null'"
        connection.execute(
            text(f"UPDATE audit_records SET shadow = {null} WHERE chain_id = :c AND seq = :s"),  # noqa: S608
            {"c": chain_id, "s": seq},
        )
        stored = connection.execute(
            text("SELECT CAST(shadow AS TEXT) FROM audit_records WHERE chain_id = :c AND seq = :s"),
            {"c": chain_id, "s": seq},
        ).scalar_one()
    assert stored == "null"
    assert_both_pass(trail)


@pytest.mark.parametrize("encryption", ["aes-256-gcm", "none"])
def test_a_changed_content_body_is_found_by_both(trail: Trail, encryption: str) -> None:
    with trail.engine.begin() as connection:
        chain_id, seq = connection.execute(
            select(CONTENT.c.chain_id, CONTENT.c.seq)
            .where(CONTENT.c.encryption == encryption)
            .order_by(CONTENT.c.chain_id, CONTENT.c.seq)
            .limit(1)
        ).one()
        body = connection.execute(
            select(CONTENT.c.body).where(CONTENT.c.chain_id == chain_id, CONTENT.c.seq == seq)
        ).scalar_one()
        connection.execute(
            update(CONTENT)
            .where(CONTENT.c.chain_id == chain_id, CONTENT.c.seq == seq)
            .values(body=body[:-1] + bytes([body[-1] ^ 1]))
        )
    assert_both_fail_at(trail, (chain_id, seq))


@pytest.mark.parametrize("chain_index", [0, 1], ids=["encrypted", "plaintext"])
def test_content_deleted_without_an_erasure_is_found_by_both(
    trail: Trail, chain_index: int
) -> None:
    chain_id = trail.chains[chain_index]
    with trail.engine.begin() as connection:
        seq = connection.execute(
            select(CONTENT.c.seq).where(CONTENT.c.chain_id == chain_id).order_by(CONTENT.c.seq)
        ).first()[0]  # type: ignore[index]
        take_content(connection, chain_id, seq)
    assert_both_fail_at(trail, (chain_id, seq))


# -- records removed, inserted, moved ----------------------------------------------------
def test_a_record_deleted_in_the_middle_is_found_by_both(trail: Trail) -> None:
    chain_id = trail.chains[0]
    seq = trail.signed(chain_id, 1) - 2
    with trail.engine.begin() as connection:
        take_content(connection, chain_id, seq)
        connection.execute(
            delete(RECORDS).where(RECORDS.c.chain_id == chain_id, RECORDS.c.seq == seq)
        )
    assert_both_fail_at(trail, (chain_id, seq + 1))


def test_two_records_swapped_are_found_by_both(trail: Trail) -> None:
    chain_id = trail.chains[1]
    a, b = 3, 6
    with trail.engine.begin() as connection:
        moved = take_content(connection, chain_id, a, b)

        def renumber(old: int, new: int) -> None:
            connection.execute(
                update(RECORDS)
                .where(RECORDS.c.chain_id == chain_id, RECORDS.c.seq == old)
                .values(seq=new)
            )

        renumber(a, -1)
        renumber(b, a)
        renumber(-1, b)
        for old_seq, row in moved.items():  # the content follows its record
            connection.execute(insert(CONTENT).values({**row, "seq": a + b - old_seq}))
    assert_both_fail_at(trail, (chain_id, a))


def test_a_forged_record_with_a_recomputed_chain_is_found_by_both(trail: Trail) -> None:
    """Insert a record at seq 4 and re-link everything after it, heads included: only
    the signed checkpoint heads can tell."""
    chain_id = trail.chains[0]
    k = 4
    with trail.engine.begin() as connection:
        originals = [
            dict(row._mapping)
            for row in connection.execute(
                select(RECORDS)
                .where(RECORDS.c.chain_id == chain_id, RECORDS.c.seq >= k)
                .order_by(RECORDS.c.seq)
            )
        ]
        contents = take_content(connection, chain_id, *(r["seq"] for r in originals))
        connection.execute(
            delete(RECORDS).where(RECORDS.c.chain_id == chain_id, RECORDS.c.seq >= k)
        )
        forged = {
            **originals[0],
            "request_id": "req_forged",
            "app": "billing",
            "content_retention": "none",
            "content_digest": None,
            "content_key_id": None,
            "decision": {"action": "allow", "note": "nothing to see"},
        }
        prev_hash = originals[0]["prev_hash"]
        for seq, row in enumerate([forged, *originals], start=k):
            new = {name: value for name, value in row.items() if name != "id"}
            new.update(seq=seq, prev_hash=prev_hash)
            new["record_hash"] = prev_hash = hash_row(new)
            connection.execute(insert(RECORDS).values(new))
        for old_seq, row in contents.items():
            connection.execute(insert(CONTENT).values({**row, "seq": old_seq + 1}))
        set_head(connection, chain_id)
    assert_both_fail_at(trail, (chain_id, trail.signed(chain_id, 0)))


def test_records_cut_below_a_signed_head_are_found_by_both(trail: Trail) -> None:
    """Delete a chain's records from just above the first checkpoint's head on, and move
    the chain's head back to match: the later checkpoints' heads are gone."""
    chain_id = trail.chains[1]
    k = trail.signed(chain_id, 0) + 2
    with trail.engine.begin() as connection:
        take_content(connection, chain_id, *range(k, k + 4 * PER_PHASE))
        connection.execute(
            delete(RECORDS).where(RECORDS.c.chain_id == chain_id, RECORDS.c.seq >= k)
        )
        set_head(connection, chain_id)
    mine, reference = run_both(trail)
    assert not reference.ok and not mine.ok, (mine.problems, reference.problems)
    assert (mine.records, mine.checkpoints) == (reference.records, reference.checkpoints)
    # Section 6.2: a signed record that no longer exists is reported at the signed seq.
    # Two heads are gone (checkpoints 2 and 3); both verifiers report every missing head.
    missing = {(chain_id, trail.signed(chain_id, 1)), (chain_id, trail.signed(chain_id, 2))}
    mine_first, reference_first = firsts(mine, reference)
    detail = (mine.problems[:3], [p.describe() for p in reference.problems[:3]])
    assert mine_first in missing and reference_first in missing, detail
    assert {problem[:2] for problem in mine.problems} == missing, detail
    assert {(p.chain_id, p.seq) for p in reference.problems} == missing, detail


def test_a_head_that_does_not_match_the_last_record_is_found_by_both(trail: Trail) -> None:
    chain_id = trail.chains[2]
    with trail.engine.begin() as connection:
        head_seq = connection.execute(
            select(CHAINS.c.head_seq).where(CHAINS.c.chain_id == chain_id)
        ).scalar_one()
        take_content(connection, chain_id, head_seq)
        connection.execute(
            delete(RECORDS).where(RECORDS.c.chain_id == chain_id, RECORDS.c.seq == head_seq)
        )
    # Section 6.2: a head that does not match the last record is reported at head_seq.
    assert_both_fail_at(trail, (chain_id, head_seq))


def test_a_whole_chain_deleted_is_found_by_both(trail: Trail) -> None:
    """Records, content and the audit_chains row of a signed chain, all gone."""
    chain_id = trail.chains[2]
    with trail.engine.begin() as connection:
        connection.execute(delete(CONTENT).where(CONTENT.c.chain_id == chain_id))
        connection.execute(delete(RECORDS).where(RECORDS.c.chain_id == chain_id))
        connection.execute(delete(CHAINS).where(CHAINS.c.chain_id == chain_id))
    # Section 6.2: a chain named by a checkpoint head but missing from audit_chains is a
    # problem of the chain (no seq), and its signed records are missing.
    assert_both_fail_at(trail, (chain_id, None))
    mine, reference = run_both(trail)
    newest = (chain_id, trail.signed(chain_id, 2))
    assert newest in {problem[:2] for problem in mine.problems}, mine.problems
    assert newest in {(p.chain_id, p.seq) for p in reference.problems}, reference.problems


# -- chain formats -----------------------------------------------------------------------
def set_format(connection: Connection, chain_id: str, fmt: int) -> None:
    connection.execute(update(CHAINS).where(CHAINS.c.chain_id == chain_id).values(format=fmt))


@pytest.mark.parametrize(("which", "fmt"), [("writer", 1), ("admin", 2)])
def test_a_chain_switched_to_the_other_format_is_found_by_both(
    trail: Trail, which: str, fmt: int
) -> None:
    """Section 2: a chain never changes format; its records no longer hash under another."""
    chain_id = trail.chains[1] if which == "writer" else SHARED_CHAIN
    with trail.engine.begin() as connection:
        set_format(connection, chain_id, fmt)
    assert_both_fail_at(trail, (chain_id, 1))


@pytest.mark.parametrize("column", ["cached_input_tokens", "price_id"])
def test_a_format_2_field_set_on_a_format_1_chain_is_found_by_both(
    trail: Trail, column: str
) -> None:
    """Section 3: format 1 does not hash these columns, so they must stay absent there."""
    with trail.engine.begin() as connection:
        connection.execute(
            update(RECORDS)
            .where(RECORDS.c.chain_id == SHARED_CHAIN, RECORDS.c.seq == 2)
            .values({column: 5})
        )
    assert_both_fail_at(trail, (SHARED_CHAIN, 2))
    mine, reference = run_both(trail)
    assert reference.first is not None and reference.first.check == "record_hash"
    assert mine.problems[0] == (SHARED_CHAIN, 2, "record_hash does not match the record")


def test_a_chain_with_an_unknown_format_is_found_by_both(trail: Trail) -> None:
    """Section 6.2: an unknown format is a problem of the chain; its records, which hash
    under a known format, are not reported besides."""
    chain_id = trail.chains[0]
    with trail.engine.begin() as connection:
        set_format(connection, chain_id, 3)
    assert_both_fail_at(trail, (chain_id, None))
    mine, reference = run_both(trail)
    assert [p[:2] for p in mine.problems] == [(chain_id, None)], mine.problems
    assert [(p.check, p.chain_id, p.seq) for p in reference.problems] == [("chain", chain_id, None)]


def test_a_chain_rehashed_under_format_1_is_found_by_both(trail: Trail) -> None:
    """Downgrading a chain to format 1 (dropping format 2's fields, which format 1 requires
    to be absent) and re-linking it consistently, head included, changes every hash: the
    signed heads tell."""
    chain_id = trail.chains[1]
    with trail.engine.begin() as connection:
        rows = [
            dict(row._mapping)
            for row in connection.execute(
                select(RECORDS).where(RECORDS.c.chain_id == chain_id).order_by(RECORDS.c.seq)
            )
        ]
        prev_hash = GENESIS
        for row in rows:
            row.update(prev_hash=prev_hash, cached_input_tokens=None, price_id=None)
            row["record_hash"] = prev_hash = hash_row(row, 1)
            connection.execute(
                update(RECORDS)
                .where(RECORDS.c.id == row["id"])
                .values(
                    prev_hash=row["prev_hash"],
                    record_hash=row["record_hash"],
                    cached_input_tokens=None,
                    price_id=None,
                )
            )
        set_format(connection, chain_id, 1)
        set_head(connection, chain_id)
    assert_both_fail_at(trail, (chain_id, trail.signed(chain_id, 0)))


# -- checkpoints -------------------------------------------------------------------------
def test_a_deleted_checkpoint_is_found_by_both(trail: Trail) -> None:
    with trail.engine.begin() as connection:
        connection.execute(delete(CHECKPOINTS).where(CHECKPOINTS.c.id == trail.checkpoints[1][0]))
    assert_both_fail_at(trail, (None, None))


@pytest.mark.parametrize("recompute_digest", [False, True], ids=["body", "body+digest"])
def test_an_altered_checkpoint_is_found_by_both(trail: Trail, recompute_digest: bool) -> None:
    checkpoint_id, heads = trail.checkpoints[1]
    chain_id = trail.chains[0]
    with trail.engine.begin() as connection:
        body = connection.execute(
            select(CHECKPOINTS.c.body).where(CHECKPOINTS.c.id == checkpoint_id)
        ).scalar_one()
        seq = heads[chain_id]
        forged = body.replace(f'"seq":{seq}', f'"seq":{seq - 1}', 1)
        assert forged != body
        values = {"body": forged}
        if recompute_digest:
            values["digest"] = hashlib.sha256(forged.encode()).hexdigest()
        connection.execute(
            update(CHECKPOINTS).where(CHECKPOINTS.c.id == checkpoint_id).values(values)
        )
    assert_both_fail_at(trail, (None, None))


def test_an_untrusted_signing_key_is_found_by_both(trail: Trail) -> None:
    _, other_pem = generate_signing_key()
    other = serialization.load_pem_public_key(other_pem)
    assert isinstance(other, Ed25519PublicKey)
    trail.public_pem, trail.public_key = other_pem, other
    assert_both_fail_at(trail, (None, None))


# -- what passes -----------------------------------------------------------------------
def test_the_untouched_trail_passes_both(trail: Trail) -> None:
    assert_both_pass(trail)
    mine, _ = run_both(trail)
    assert mine.records == 4 * 3 * PER_PHASE + 3 and mine.checkpoints == 3


def test_format_1_and_format_2_chains_pass_both_side_by_side(trail: Trail) -> None:
    """Section 2: the admin chain (created by migration 0003) keeps format 1; writer
    chains created since use format 2, with cached_input_tokens and price_id hashed."""
    assert FORMAT == 2
    with trail.engine.connect() as connection:
        formats = dict(connection.execute(select(CHAINS.c.chain_id, CHAINS.c.format)).all())
        records = [dict(row._mapping) for row in connection.execute(select(RECORDS))]
        as_text = {
            (row.chain_id, row.seq): row
            for row in connection.execute(
                text(
                    "SELECT chain_id, seq, CAST(attempts AS TEXT) AS attempts,"
                    " CAST(finish_reasons AS TEXT) AS finish_reasons,"
                    " CAST(decision AS TEXT) AS decision, CAST(shadow AS TEXT) AS shadow"
                    " FROM audit_records"
                )
            )
        }
    assert formats == {SHARED_CHAIN: 1, **dict.fromkeys(trail.chains, 2)}
    admin = [r for r in records if r["chain_id"] == SHARED_CHAIN]
    writers = [r for r in records if r["chain_id"] != SHARED_CHAIN]
    assert len(admin) == 3 and len(writers) == 4 * 3 * PER_PHASE
    assert {r["cached_input_tokens"] for r in writers} >= {None, 0, 1}
    assert all(r["price_id"] is not None for r in writers if r["kind"] == "completed")
    assert all(r["cached_input_tokens"] is r["price_id"] is None for r in admin)
    for row in records:  # each under its chain's format, in both implementations
        fmt = formats[row["chain_id"]]
        other = 3 - fmt
        assert hash_row(row, fmt) == row["record_hash"] != hash_row(row, other)
        stored = {**row, **as_text[row["chain_id"], row["seq"]]._mapping}
        assert record_hash(stored, fmt) == row["record_hash"] != record_hash(stored, other)
    assert_both_pass(trail)


def test_after_a_purge_both_pass(trail: Trail) -> None:
    with trail.engine.connect() as connection:
        before = connection.execute(select(CONTENT.c.seq)).all()
    deleted = Retention(session_factory(trail.engine)).purge(
        OPERATOR, older_than=dt.timedelta(days=7)
    )
    assert 0 < deleted < len(before)
    assert_both_pass(trail)


def test_after_a_purge_newer_content_is_still_required_by_both(trail: Trail) -> None:
    Retention(session_factory(trail.engine)).purge(OPERATOR, older_than=dt.timedelta(days=7))
    with trail.engine.begin() as connection:
        chain_id, seq = connection.execute(
            select(CONTENT.c.chain_id, CONTENT.c.seq)
            .order_by(CONTENT.c.chain_id, CONTENT.c.seq)
            .limit(1)
        ).one()
        take_content(connection, chain_id, seq)
    assert_both_fail_at(trail, (chain_id, seq))


@pytest.mark.parametrize(
    "scope", [{"app": "billing"}, {"end_user": "alice"}], ids=["app", "end_user"]
)
def test_after_a_forget_both_pass(trail: Trail, scope: dict[str, str]) -> None:
    forgotten = Retention(session_factory(trail.engine)).forget(OPERATOR, **scope)
    assert forgotten.keys_destroyed > 0 and forgotten.plaintext_deleted > 0
    assert_both_pass(trail)


def test_after_a_forget_other_content_is_still_required_by_both(trail: Trail) -> None:
    Retention(session_factory(trail.engine)).forget(OPERATOR, app="billing")
    with trail.engine.begin() as connection:
        chain_id, seq = connection.execute(
            select(CONTENT.c.chain_id, CONTENT.c.seq)
            .join(
                RECORDS,
                (RECORDS.c.chain_id == CONTENT.c.chain_id) & (RECORDS.c.seq == CONTENT.c.seq),
            )
            .where(RECORDS.c.app == "search", CONTENT.c.encryption == "none")
            .order_by(CONTENT.c.chain_id, CONTENT.c.seq)
            .limit(1)
        ).one()
        take_content(connection, chain_id, seq)
    assert_both_fail_at(trail, (chain_id, seq))


@pytest.mark.parametrize("column", ["recorded_at", "cost"])
def test_sqlite_text_of_the_same_value_passes_both(trail: Trail, column: str) -> None:
    """On SQLite timestamps and money are text; the hash covers the value, not the text
    (section 3: a zero fraction may be missing; cost is printed with 12 digits)."""
    with trail.engine.begin() as connection:
        if is_pg(connection):
            pytest.skip("SQLite stores these as text; PostgreSQL does not")
        changed = connection.execute(
            text(
                "UPDATE audit_records SET recorded_at = substr(recorded_at, 1, 19) "
                "WHERE recorded_at LIKE '%.000000'"
                if column == "recorded_at"
                else "UPDATE audit_records SET cost = cost || '000' WHERE cost IS NOT NULL"
            )
        ).rowcount
    assert changed > 0
    assert_both_pass(trail)


@pytest.mark.parametrize("what", ["unsigned tail cut", "last checkpoint deleted"])
def test_what_the_format_cannot_see_passes_both(trail: Trail, what: str) -> None:
    """Section 6, "what this proves": without an anchor, the records above the last
    signed head and the last checkpoint itself can be removed undetected."""
    with trail.engine.begin() as connection:
        if what == "unsigned tail cut":
            chain_id = trail.chains[2]
            k = trail.signed(chain_id, 2) + 1
            take_content(connection, chain_id, *range(k, k + PER_PHASE))
            connection.execute(
                delete(RECORDS).where(RECORDS.c.chain_id == chain_id, RECORDS.c.seq >= k)
            )
            set_head(connection, chain_id)
        else:
            connection.execute(
                delete(CHECKPOINTS).where(CHECKPOINTS.c.id == trail.checkpoints[-1][0])
            )
    assert_both_pass(trail)
