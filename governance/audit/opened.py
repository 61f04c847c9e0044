"""Opening one record's stored content: the one place that knows the statuses a content
body can be in and how sealed content is unsealed. Readers (the audit reader, the
monitors) share it, so they agree on what "erased" or "unreadable" means."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection

from governance.audit.vault import ENCRYPTION, InvalidTag, KeyRing
from governance.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Opened:
    """One record's content: its JSON document, or why there is none.

    ``status`` is ``none`` (the policy kept none), ``present``, ``erased`` (purged, or
    plaintext forgotten), ``shredded`` (its data key was destroyed) or ``unreadable``
    (sealed under a master key this process does not hold, or altered; ``reason`` says).
    """

    status: str
    document: dict[str, Any] | None = None
    reason: str | None = None


def open_content(
    ring: KeyRing,
    connection: Connection,
    *,
    chain_id: str,
    seq: int,
    digest: str | None,
    key_id: str | None,
    encryption: str | None,
    body: bytes | None,
) -> Opened:
    """Open the content body of record ``(chain_id, seq)`` (``digest`` is the record's
    ``content_digest``; ``encryption`` and ``body`` come from its content row, if any)."""
    if digest is None:
        return Opened("none")
    if body is None:
        return Opened("erased")
    plain: bytes | None = body
    if encryption == ENCRYPTION:
        if key_id is None:
            return Opened("unreadable", reason="sealed content names no data key")
        try:
            plain = ring.open(connection, key_id, body, chain_id, seq)
        except ConfigError as exc:  # another master key, or none configured
            return Opened("unreadable", reason=exc.message)
        except InvalidTag:
            return Opened("unreadable", reason="the ciphertext fails authentication")
    if plain is None:
        return Opened("shredded")
    document = orjson.loads(plain)
    return Opened("present", document if isinstance(document, dict) else None)
