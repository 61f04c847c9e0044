"""Encryption of ``full`` audit content: per-(app, end user) data keys under a master key.

Content is sealed with AES-256-GCM under a data key; the data key is stored wrapped
(AES-256-GCM) by the master key from configuration, never in the clear. Destroying a
data key's wrapped form (``audit forget``) makes everything it sealed unreadable for good
(crypto-shredding), while the ciphertext, and so the chain's content digest, stays.

Formats (docs/audit-format.md, "Content"): a sealed body is ``nonce (12 bytes) ||
ciphertext || tag (16 bytes)``; its associated data binds it to its record
(``tollhouse-content/1|<chain_id>|<seq>``), a wrapped key to its id
(``tollhouse-data-key/1|<key id>``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, insert, select

from governance.db.models import AuditDataKey
from governance.errors import ConfigError

ENCRYPTION = "aes-256-gcm"
_NONCE = 12


class MasterKey:
    """The key that wraps data keys. ``key_id`` names it without revealing it."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the master key must be 32 bytes")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(b"tollhouse-master-key/1|" + key).hexdigest()[:16]

    @classmethod
    def from_file(cls, path: str | Path) -> MasterKey:
        """Read a base64-encoded 32-byte key (what ``tollhouse audit keygen`` writes)."""
        try:
            text = Path(path).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"audit.master_key_file: cannot read {path}: {exc}") from exc
        try:
            key = base64.b64decode(text, validate=True)
        except binascii.Error as exc:
            raise ConfigError(f"audit.master_key_file: {path} is not base64") from exc
        if len(key) != 32:
            raise ConfigError(
                f"audit.master_key_file: {path} holds {len(key)} bytes; a master key is 32 "
                "(create one with `tollhouse audit keygen --master-key FILE`)"
            )
        return cls(key)

    @staticmethod
    def generate() -> str:
        """A new master key, base64-encoded."""
        return base64.b64encode(os.urandom(32)).decode("ascii")

    def wrap(self, key_id: str, data_key: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, data_key, _key_aad(key_id))

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        return self._aead.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], _key_aad(key_id))


def _key_aad(key_id: str) -> bytes:
    return b"tollhouse-data-key/1|" + key_id.encode("ascii")


def content_aad(chain_id: str, seq: int) -> bytes:
    return b"tollhouse-content/1|%s|%d" % (chain_id.encode("ascii"), seq)


def seal(data_key: bytes, plaintext: bytes, chain_id: str, seq: int) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(data_key).encrypt(nonce, plaintext, content_aad(chain_id, seq))


def unseal(data_key: bytes, body: bytes, chain_id: str, seq: int) -> bytes:
    return AESGCM(data_key).decrypt(body[:_NONCE], body[_NONCE:], content_aad(chain_id, seq))


@dataclass(slots=True)
class _Cached:
    key_id: str
    key: bytes
    checked: float


class DataKeys:
    """The audit writer's data keys, one per (app, end user), cached for ``ttl_s``.

    A key is created the first time a scope needs one and inserted in the same
    transaction as the content it seals (`pending` until that commits). After
    ``ttl_s`` a cached key is re-read; if it was destroyed meanwhile (forget), a new one
    is made. So content written in the ``ttl_s`` after a forget is sealed under the
    destroyed key, and is unreadable too.
    """

    def __init__(
        self,
        master: MasterKey,
        ttl_s: float = 60.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._master = master
        self._ttl_s = ttl_s
        self._clock = clock
        self._monotonic = monotonic
        self._cache: dict[tuple[str, str | None], _Cached] = {}
        self._pending: list[tuple[tuple[str, str | None], dict[str, object]]] = []

    def key_for(self, connection: Connection, app: str, end_user: str | None) -> tuple[str, bytes]:
        """The (id, key) to seal content of this scope with, creating one if needed."""
        scope = (app, end_user)
        now = self._monotonic()
        cached = self._cache.get(scope)
        if cached is not None and now - cached.checked < self._ttl_s:
            return cached.key_id, cached.key
        if cached is not None and self._alive(connection, cached.key_id):
            cached.checked = now
            return cached.key_id, cached.key
        key_id, key = secrets.token_hex(12), AESGCM.generate_key(bit_length=256)
        row: dict[str, object] = {
            "id": key_id,
            "app": app,
            "end_user": end_user,
            "master_key_id": self._master.key_id,
            "wrapped": self._master.wrap(key_id, key),
            "created_at": self._clock(),
        }
        connection.execute(insert(AuditDataKey), [row])
        self._cache[scope] = _Cached(key_id, key, now)
        self._pending.append((scope, row))
        return key_id, key

    def committed(self) -> None:
        self._pending.clear()

    def rolled_back(self) -> None:
        """The transaction that inserted the pending keys failed: forget them."""
        for scope, row in self._pending:
            cached = self._cache.get(scope)
            if cached is not None and cached.key_id == row["id"]:
                del self._cache[scope]
        self._pending.clear()

    @staticmethod
    def _alive(connection: Connection, key_id: str) -> bool:
        wrapped = connection.execute(
            select(AuditDataKey.wrapped).where(AuditDataKey.id == key_id)
        ).scalar_one_or_none()
        return wrapped is not None


class KeyRing:
    """Opens sealed content for readers: unwraps data keys on demand."""

    def __init__(self, master: MasterKey | None) -> None:
        self._master = master
        self._keys: dict[str, bytes | None] = {}

    def open(
        self, connection: Connection, key_id: str, body: bytes, chain_id: str, seq: int
    ) -> bytes | None:
        """The plaintext, or None when the key was destroyed (forgotten) or is unknown.

        Raises `ConfigError` when no master key is configured or it is not the one that
        wrapped the key, and `InvalidTag` when the ciphertext was altered.
        """
        if key_id not in self._keys:
            row = connection.execute(
                select(AuditDataKey.wrapped, AuditDataKey.master_key_id).where(
                    AuditDataKey.id == key_id
                )
            ).one_or_none()
            if row is None or row.wrapped is None:
                self._keys[key_id] = None
            else:
                if self._master is None:
                    raise ConfigError(
                        "audit.master_key_file is not configured; encrypted content cannot be read"
                    )
                if row.master_key_id != self._master.key_id:
                    raise ConfigError(
                        f"data key {key_id} is wrapped by master key {row.master_key_id}, "
                        f"not the configured {self._master.key_id}"
                    )
                self._keys[key_id] = self._master.unwrap(key_id, row.wrapped)
        key = self._keys[key_id]
        return None if key is None else unseal(key, body, chain_id, seq)


__all__ = ["ENCRYPTION", "DataKeys", "InvalidTag", "KeyRing", "MasterKey", "seal", "unseal"]
