"""The record hash: format 1 of docs/audit-format.md, the one definition Tollhouse uses.

A record's hash is SHA-256 over a compact JSON array: a format tag, then every hashed
field in a fixed order, each ``null``, a boolean, an integer or a string. Timestamps,
money and milliseconds become strings of a fixed shape; JSON columns are hashed as the
exact text stored in the database (the engine stores the text `canonical_json_text`
produces, and the writer hashes that same text). The array is written by orjson, whose
output for these types is the minimal JSON the document specifies.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson

from governance.db.types import canonical_json_text

FORMAT = 1
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
# Changing this list is a new format number.
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
JSON_FIELDS = frozenset(name for name, conv in FIELDS_V1 if conv is _json)
HASHED_FIELDS: tuple[str, ...] = tuple(name for name, _ in FIELDS_V1)
_CONVERTED = tuple(
    (index, conv) for index, (_, conv) in enumerate(FIELDS_V1, start=1) if conv is not None
)
TAG = "tollhouse-audit/1"


def preimage(values: Sequence[Any]) -> bytes:
    """The hashed bytes of one record, ``values`` in `HASHED_FIELDS` order."""
    items: list[Any] = [TAG, *values]
    if len(items) != len(FIELDS_V1) + 1:
        raise ValueError(f"expected {len(FIELDS_V1)} values, got {len(values)}")
    for index, convert in _CONVERTED:
        value = items[index]
        if value is not None:
            items[index] = convert(value)
    return orjson.dumps(items)


def record_hash(values: Sequence[Any]) -> str:
    """Hex SHA-256 of `preimage`."""
    return hashlib.sha256(preimage(values)).hexdigest()


def hash_row(row: Mapping[str, Any]) -> str:
    """`record_hash` of a mapping with (at least) every hashed field."""
    return record_hash([row.get(name) for name in HASHED_FIELDS])


def content_digest(body: bytes) -> str:
    """Hex SHA-256 of a stored content body."""
    return hashlib.sha256(body).hexdigest()
