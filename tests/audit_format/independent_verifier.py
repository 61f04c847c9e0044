"""An independent verifier of a Tollhouse audit trail (record hash formats 1 and 2).

Written from ``docs/audit-format.md`` alone, without reading Tollhouse's code, as
documentation-by-example for auditors: standard library, ``cryptography`` for Ed25519
and a database driver, nothing else. Section numbers below refer to that document.

    result = verify("sqlite:////var/lib/tollhouse/audit.db", [public_key_pem])
    result.ok, result.problems  # [(chain_id, seq, description), ...]

Where the document leaves room, this verifier reads it strictly: a stored value of the
wrong type (text or 2 in a boolean column, " 0.5" or "NaN" as a cost) is never coerced,
so it hashes differently; a signature must be the canonical Base64 of its bytes; a forget
explains content only when exactly one of `app` / `end_user` is set; a chain's format must
be the integer 1 or 2. Problems come in this order: checkpoints (in id order), then
chains without a row or with an unknown format (by chain_id), then each chain's records
(by chain_id).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ZEROS = "0" * 64

# Section 3: format 1's 39 hashed fields, in order, with the kind of each.
FIELDS_V1 = [
    ("chain_id", "text"), ("seq", "int"), ("prev_hash", "text"), ("request_id", "text"),
    ("kind", "text"), ("recorded_at", "time"), ("app", "text"), ("team", "text"),
    ("key_id", "text"), ("end_user", "text"), ("endpoint", "text"),
    ("requested_model", "text"), ("stream", "bool"), ("upstream", "text"),
    ("deployment_model", "text"), ("destination", "text"), ("attempts", "json"),
    ("response_id", "text"), ("response_model", "text"), ("system_fingerprint", "text"),
    ("status", "text"), ("http_status", "int"), ("error_type", "text"),
    ("error_message", "text"), ("finish_reasons", "json"), ("input_tokens", "int"),
    ("output_tokens", "int"), ("usage_estimated", "bool"), ("cost", "cost"),
    ("currency", "text"), ("latency_ms", "float"), ("ttft_ms", "float"),
    ("content_retention", "text"), ("content_digest", "text"), ("content_key_id", "text"),
    ("policy_name", "text"), ("policy_version", "int"), ("decision", "json"),
    ("shadow", "json"),
]  # fmt: skip
# Section 3: format 2 is format 1's fields followed by two integers.
FIELDS_V2 = [*FIELDS_V1, ("cached_input_tokens", "int"), ("price_id", "int")]
# Section 3: audit_chains.format -> (tag, fields).
FORMATS = {1: ("tollhouse-audit/1", FIELDS_V1), 2: ("tollhouse-audit/2", FIELDS_V2)}

# A plain decimal number, as `cost` is stored on SQLite (no spaces, no NaN, no "_").
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _utf8(text: str) -> bytes:
    # Text that SQLite held as invalid UTF-8 comes back as its original bytes (see _Db).
    return text.encode("utf-8", "surrogateescape")


@dataclass
class Result:
    ok: bool = True
    records: int = 0
    checkpoints: int = 0
    problems: list[tuple[str | None, int | None, str]] = field(default_factory=list)

    def problem(self, chain_id: str | None, seq: int | None, text: str) -> None:
        self.ok = False
        self.problems.append((chain_id, seq, text))


class _Db:
    """The two drivers behind one tiny interface; '?' placeholders on both."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            self.pg = False
            path = url.removeprefix("sqlite:///")
            self.conn: Any = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            self.conn.text_factory = lambda data: data.decode("utf-8", "surrogateescape")
        else:
            import psycopg  # only needed for PostgreSQL

            self.pg = True
            self.conn = psycopg.connect(url.replace("+psycopg", "", 1))

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.pg:
            sql = sql.replace("?", "%s")
        return list(self.conn.execute(sql, params).fetchall())

    def close(self) -> None:
        self.conn.close()


def _utc(value: Any) -> datetime:
    """A stored timestamp as an aware UTC datetime (section 3, notes)."""
    # PostgreSQL gives a datetime (timestamptz); SQLite text is UTC without a zone.
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _element(kind: str, value: Any) -> Any:
    """Section 3: the JSON value of one field (None: absent).

    Raises ValueError for a value of the wrong type (text in an integer column, which
    SQLite allows): such a record cannot hash like any record Tollhouse wrote.
    """
    if value is None or (kind == "json" and value == "null"):
        return None
    if kind in ("text", "json") and isinstance(value, str):
        return value
    if kind == "int" and type(value) is int:
        return value
    if kind == "bool" and isinstance(value, int) and value in (0, 1):
        return bool(value)  # PostgreSQL boolean, or SQLite 0 / 1
    if kind == "time" and isinstance(value, str | datetime):
        stamp = _utc(value).replace(tzinfo=None)  # isoformat pads the year to 4 digits
        return stamp.isoformat(timespec="microseconds") + "Z"
    if kind == "float" and type(value) in (int, float) and math.isfinite(value):
        return f"{value:.3f}"  # same as C printf("%.3f")
    if kind == "cost" and (
        type(value) in (int, Decimal) or (isinstance(value, str) and _DECIMAL.fullmatch(value))
    ):
        exact = Decimal(value)  # by value: SQLite text or PostgreSQL numeric alike
        if exact.is_finite():
            fixed = exact.quantize(Decimal("1e-12"), ROUND_HALF_EVEN, Context(prec=100))
            return format(fixed.copy_abs() if fixed.is_zero() else fixed, "f")  # no "-0"
    raise ValueError(f"a {kind} field holds {type(value).__name__} {value!r}")


def _format(value: Any) -> int | None:
    """Section 2: a chain's format, if it is one section 3 defines (else None)."""
    return value if type(value) is int and value in FORMATS else None


def record_hash(row: dict[str, Any], fmt: int) -> str | None:
    """Section 3: hex(SHA-256(compact JSON [tag, v_1, ..., v_n])) under format ``fmt``:
    ["tollhouse-audit/1", 39 values] or ["tollhouse-audit/2", 41 values].

    None when a field holds a value of the wrong type, which matches no stored hash.
    """
    tag, fields = FORMATS[fmt]
    try:
        values = [_element(kind, row[name]) for name, kind in fields]
    except (ValueError, TypeError, ArithmeticError):
        return None
    text = json.dumps([tag, *values], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(_utf8(text)).hexdigest()


def _matches(row: dict[str, Any], fmt: int) -> bool:
    """Section 3: the stored record_hash is the hash under ``fmt``, and the columns that
    ``fmt`` does not hash (format 2's fields, for format 1) are absent."""
    hashed = {name for name, _ in FORMATS[fmt][1]}
    if any(row[name] is not None for name, _ in FIELDS_V2 if name not in hashed):
        return False
    return record_hash(row, fmt) == row["record_hash"]


def _key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _signed(key: Ed25519PublicKey | None, signature: Any, data: bytes) -> bool:
    """Section 5: strict Base64 (standard alphabet, padded) of an Ed25519 signature."""
    if key is None or not isinstance(signature, str):
        return False
    try:
        raw = base64.b64decode(signature, validate=True)
        if base64.b64encode(raw).decode() != signature:  # canonical form only
            return False
        key.verify(raw, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def _heads(doc: dict, where: str, result: Result) -> list[tuple[str, int, str]]:
    """The {chain, seq, hash} heads of a checkpoint body."""
    heads = doc.get("heads", [])
    found = []
    for head in heads if isinstance(heads, list) else [heads]:
        values = head if isinstance(head, dict) else {}
        chain, seq, hash_ = values.get("chain"), values.get("seq"), values.get("hash")
        if isinstance(chain, str) and type(seq) is int and isinstance(hash_, str):
            found.append((chain, seq, hash_))
        else:
            result.problem(None, None, where + f"malformed head {head!r}")
    return found


def _checkpoints(db: _Db, keys: dict[str, Ed25519PublicKey], result: Result) -> list[tuple]:
    """Section 6.1; returns the heads of the checkpoints whose signature verified."""
    heads: list[tuple[str, int, str]] = []
    before = ZEROS
    rows = db.rows(
        "SELECT id, key_id, previous, digest, body, signature FROM audit_checkpoints ORDER BY id"
    )
    for cp_id, key_id, previous, digest, body, signature in rows:
        result.checkpoints += 1
        where = f"checkpoint {cp_id}: "
        data = _utf8(body or "")
        if hashlib.sha256(data).hexdigest() != digest:
            result.problem(None, None, where + "digest does not match body")
        signed = _signed(keys.get(key_id), signature, data)
        if not signed:
            result.problem(None, None, where + "signature does not verify under a trusted key")
        try:
            doc = json.loads(body)
        except (TypeError, ValueError):
            doc = None
        if not isinstance(doc, dict) or doc.get("format") != "tollhouse-checkpoint/1":
            result.problem(None, None, where + "body is not a tollhouse-checkpoint/1 object")
            doc = doc if isinstance(doc, dict) else {}
        if doc.get("previous") != previous:
            result.problem(None, None, where + "body previous differs from previous column")
        if previous != before:
            result.problem(None, None, where + "previous is not the digest of the one before")
        before = digest  # the link check goes on from here, whether or not this one verified
        if signed:  # heads of a checkpoint whose signature fails are not used
            heads.extend(_heads(doc, where, result))
    return heads


def _erasures(db: _Db) -> list[tuple[str, datetime, dict]]:
    """Section 4, Erasure: (endpoint, recorded_at, decision) of purge/forget records."""
    decision = "decision::text" if db.pg else "decision"
    found = []
    for endpoint, recorded_at, text in db.rows(
        "SELECT endpoint, recorded_at, " + decision + " FROM audit_records "  # noqa: S608
        "WHERE chain_id = 'admin' AND kind = 'admin' "
        "AND endpoint IN ('audit.purge', 'audit.forget')"
    ):
        try:
            parsed = json.loads(text)
            if isinstance(parsed, dict):
                found.append((endpoint, _utc(recorded_at), parsed))
        except (TypeError, ValueError):
            continue  # an erasure record without a readable decision explains nothing
    return found


def _erased(row: dict[str, Any], erasures: list[tuple[str, datetime, dict]]) -> bool:
    """Does a purge or forget explain that this record's content is missing?"""
    try:
        at = _utc(row["recorded_at"])
    except (TypeError, ValueError):
        return False
    for endpoint, erased_at, decision in erasures:
        if endpoint == "audit.purge":
            try:
                if at < _utc(decision.get("older_than")):
                    return True
            except (TypeError, ValueError):
                continue
        elif at <= erased_at:  # audit.forget: exactly one of app / end_user is null
            app, end_user = decision.get("app"), decision.get("end_user")
            if app is not None and end_user is None and row["app"] == app:
                return True
            if app is None and end_user is not None and row["end_user"] == end_user:
                return True
    return False


def _chain(
    db: _Db,
    chain_id: str,
    listed: tuple[int, str, Any] | None,
    heads: list[tuple[int, str]],
    erasures: list[tuple[str, datetime, dict]],
    result: Result,
) -> None:
    """Section 6.2 for one chain; `listed` is its (head_seq, head_hash, format), if it has
    a row. A chain whose format is unknown (no row, or not 1 or 2) was reported already;
    its records are checked against both formats, and pass if one matches."""
    fmt = _format(listed[2]) if listed is not None else None
    formats = [fmt] if fmt is not None else sorted(FORMATS)
    # Every column a format hashes (format 1's are a prefix of format 2's).
    names = [f"{name}::text" if db.pg and kind == "json" else name for name, kind in FIELDS_V2]
    rows = db.rows(
        "SELECT " + ", ".join(names) + ", record_hash FROM audit_records "  # noqa: S608
        "WHERE chain_id = ? ORDER BY seq",
        chain_id,
    )
    content = dict(db.rows("SELECT seq, body FROM audit_content WHERE chain_id = ?", chain_id))
    stored: dict[int, str] = {}  # seq -> stored record_hash
    expected_seq, previous = 1, ZEROS
    for values in rows:
        row = dict(zip([name for name, _ in FIELDS_V2] + ["record_hash"], values, strict=True))
        seq = row["seq"]
        result.records += 1
        if seq != expected_seq:
            result.problem(chain_id, seq, f"seq {seq} where {expected_seq} was expected")
        if row["prev_hash"] != (ZEROS if seq == 1 else previous):
            result.problem(chain_id, seq, "prev_hash does not link to the previous record")
        if not any(_matches(row, f) for f in formats):
            result.problem(chain_id, seq, "record_hash does not match the record")
        body = content.get(seq)
        if body is not None:
            if row["content_digest"] != hashlib.sha256(bytes(body)).hexdigest():
                result.problem(chain_id, seq, "content_digest does not match stored content")
        elif row["content_digest"] is not None and not _erased(row, erasures):
            result.problem(chain_id, seq, "content is missing and no erasure explains it")
        stored[seq] = row["record_hash"]
        expected_seq, previous = seq + 1, row["record_hash"]
    for seq, hash_ in heads:
        if seq not in stored:
            result.problem(chain_id, seq, "a record signed by a checkpoint is missing")
        elif stored[seq] != hash_:
            result.problem(chain_id, seq, "record differs from a signed checkpoint head")
    last = (rows[-1][1], rows[-1][-1]) if rows else (0, ZEROS)
    if listed is not None and tuple(listed[:2]) != last:
        result.problem(chain_id, listed[0], "head_seq/head_hash is not the chain's last record")


def verify(url: str, public_keys_pem: list[bytes]) -> Result:
    """Check everything section 6 lists (items 1 and 2; there is no --anchor here)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for pem in public_keys_pem:
        key = serialization.load_pem_public_key(pem)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("trusted keys must be Ed25519 public keys")
        keys[_key_id(key)] = key
    result = Result()
    db = _Db(url)
    try:
        heads = list(dict.fromkeys(_checkpoints(db, keys, result)))  # each head once
        erasures = _erasures(db)
        rows = db.rows("SELECT chain_id, head_seq, head_hash, format FROM audit_chains")
        listed = {chain_id: (seq, hash_, fmt) for chain_id, seq, hash_, fmt in rows}
        # Section 6.2: every chain listed, named by a (used) checkpoint head, or by a record.
        chains = set(listed) | {c for c, _, _ in heads}
        chains |= {c for (c,) in db.rows("SELECT DISTINCT chain_id FROM audit_records")}
        for chain_id in sorted(chains):  # problems of whole chains first
            if chain_id not in listed:
                result.problem(chain_id, None, "chain is not listed in audit_chains")
            elif _format(listed[chain_id][2]) is None:
                result.problem(chain_id, None, f"unknown format {listed[chain_id][2]!r}")
        for chain_id in sorted(chains):
            mine = [(seq, hash_) for c, seq, hash_ in heads if c == chain_id]
            _chain(db, chain_id, listed.get(chain_id), mine, erasures, result)
    finally:
        db.close()
    return result
