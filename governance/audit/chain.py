"""The record hash: formats 1 and 2 of docs/audit-format.md, the one definition in use.

A record's hash is SHA-256 over a compact JSON array: a format tag, then every hashed
field of that format in a fixed order, each ``null``, a boolean, an integer or a string.
Timestamps, money and milliseconds become strings of a fixed shape; JSON columns are
hashed as the exact text stored in the database (the engine stores the text
`canonical_json_text` produces, and the writer hashes that same text). The array is
written by orjson, whose output for these types is the minimal JSON the document
specifies.

Every chain has one format for its whole life (``audit_chains.format``), and each of its
records is hashed and verified with that format. Format 2 hashes format 1's fields
followed by ``cached_input_tokens`` and ``price_id``. Chains created from now on use
`FORMAT`; older chains keep theirs: the shared ``admin`` chain and ``migrated-0003``,
both created by migration 0003, are format 1 for good.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from governance.db.types import canonical_json_text

FORMAT = 2  # the format of chains created now; existing chains keep their own
GENESIS = "0" * 64
SHARED_CHAIN = "admin"  # administrative records, appended under a row lock
_MONEY = Decimal("1e-12")


def _time(value: Any) -> str:
    if isinstance(value, str):  # SQLite's stored text, "YYYY-MM-DD HH:MM:SS.ffffff" in UTC
        if len(value) == 26 and value[10] == " ":
            return f"{value[:10]}T{value[11:]}Z"
        value = dt.datetime.fromisoformat(value)
        value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
    assert isinstance(value, dt.datetime)
    moment = value if value.tzinfo is dt.UTC else value.astimezone(dt.UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_MONEY_CONTEXT = decimal.Context(prec=60)


def _money(value: Any) -> Any:
    if isinstance(value, str):  # SQLite's stored text: only a plain decimal has a value
        if _PLAIN_DECIMAL.fullmatch(value) is None:
            return value  # hashes differently from any cost, so it is detected
        value = Decimal(value)
    if not isinstance(value, Decimal | int):
        return value
    return format(Decimal(value).quantize(_MONEY, context=_MONEY_CONTEXT), "f")


def _milliseconds(value: Any) -> str:
    return f"{float(value):.3f}"


def _boolean(value: Any) -> Any:
    if type(value) is int and value in (0, 1):  # SQLite stores booleans as 0/1
        return bool(value)
    return value  # a bool, or a wrong-typed value that must hash differently


def _json(value: Any) -> str | None:
    # Records read back from the database carry the stored text; records being written
    # carry Python values, which the engine will store as exactly this text.
    text = value if isinstance(value, str) else canonical_json_text(value)
    return None if text == "null" else text


_Convert = Callable[[Any], Any]

# (field, conversion), in hash order; None: the value as it is (text or integer).
# Format 1. Never change it: a changed list is a new format number.
FIELDS_V1: tuple[tuple[str, _Convert | None], ...] = (
    ("chain_id", None),
    ("seq", None),
    ("prev_hash", None),
    ("request_id", None),
    ("kind", None),
    ("recorded_at", _time),
    ("app", None),
    ("team", None),
    ("key_id", None),
    ("end_user", None),
    ("endpoint", None),
    ("requested_model", None),
    ("stream", _boolean),
    ("upstream", None),
    ("deployment_model", None),
    ("destination", None),
    ("attempts", _json),
    ("response_id", None),
    ("response_model", None),
    ("system_fingerprint", None),
    ("status", None),
    ("http_status", None),
    ("error_type", None),
    ("error_message", None),
    ("finish_reasons", _json),
    ("input_tokens", None),
    ("output_tokens", None),
    ("usage_estimated", _boolean),
    ("cost", _money),
    ("currency", None),
    ("latency_ms", _milliseconds),
    ("ttft_ms", _milliseconds),
    ("content_retention", None),
    ("content_digest", None),
    ("content_key_id", None),
    ("policy_name", None),
    ("policy_version", None),
    ("decision", _json),
    ("shadow", _json),
)
# Format 2: format 1's fields, then two plain integers (migration 0004's columns).
FIELDS_V2: tuple[tuple[str, _Convert | None], ...] = (
    *FIELDS_V1,
    ("cached_input_tokens", None),
    ("price_id", None),
)


@dataclass(frozen=True, slots=True)
class _Format:
    tag: str
    names: tuple[str, ...]
    converted: tuple[tuple[int, _Convert], ...]  # (index in the preimage array, conversion)


def _format(tag: str, fields: tuple[tuple[str, _Convert | None], ...]) -> _Format:
    converted = tuple(
        (index, conv) for index, (_, conv) in enumerate(fields, start=1) if conv is not None
    )
    return _Format(tag, tuple(name for name, _ in fields), converted)


_FORMATS: dict[int, _Format] = {
    1: _format("tollhouse-audit/1", FIELDS_V1),
    2: _format("tollhouse-audit/2", FIELDS_V2),
}
FORMATS = frozenset(_FORMATS)  # every format this version can hash and verify
# Every hashed column: the newest format's fields (each format's are a prefix of these).
HASHED_FIELDS: tuple[str, ...] = _FORMATS[max(_FORMATS)].names
JSON_FIELDS = frozenset(name for name, conv in FIELDS_V2 if conv is _json)


def _spec(fmt: int) -> _Format:
    spec = _FORMATS.get(fmt) if type(fmt) is int else None
    if spec is None:
        raise ValueError(f"unknown audit hash format {fmt!r}")
    return spec


def hashed_fields(fmt: int = FORMAT) -> tuple[str, ...]:
    """The fields format ``fmt`` hashes, in order (a prefix of `HASHED_FIELDS`)."""
    return _spec(fmt).names


def preimage(values: Sequence[Any], fmt: int = FORMAT) -> bytes:
    """The hashed bytes of one record, ``values`` in `hashed_fields` (``fmt``) order."""
    spec = _spec(fmt)
    items: list[Any] = [spec.tag, *values]
    if len(items) != len(spec.names) + 1:
        raise ValueError(f"format {fmt} expects {len(spec.names)} values, got {len(values)}")
    for index, convert in spec.converted:
        value = items[index]
        if value is not None:
            items[index] = convert(value)
    return orjson.dumps(items)


def record_hash(values: Sequence[Any], fmt: int = FORMAT) -> str:
    """Hex SHA-256 of `preimage`."""
    return hashlib.sha256(preimage(values, fmt)).hexdigest()


def hash_row(row: Mapping[str, Any], fmt: int = FORMAT) -> str:
    """`record_hash` of a mapping with (at least) every field ``fmt`` hashes."""
    return record_hash([row.get(name) for name in _spec(fmt).names], fmt)


def content_digest(body: bytes) -> str:
    """Hex SHA-256 of a stored content body."""
    return hashlib.sha256(body).hexdigest()
