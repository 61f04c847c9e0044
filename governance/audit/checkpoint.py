"""Signed checkpoints: Ed25519 signatures over the heads of the audit chains.

A checkpoint lists the head (seq and hash) of every chain that grew since the last one,
names the previous checkpoint's digest (so checkpoints form their own chain), and is
signed with the key in ``audit.signing_key_file``. Once a head is signed, nobody without
the key can truncate, rewrite or extend the chain below it unnoticed. Export checkpoints
(``tollhouse audit checkpoint export``) to anchor them outside the database.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from governance.audit.chain import GENESIS
from governance.db.models import AuditChain, AuditCheckpoint
from governance.errors import ConfigError

CHECKPOINT_FORMAT = "tollhouse-checkpoint/1"


def key_id_of(public: Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 over the raw 32-byte public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_signing_key(path: str | Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"audit.signing_key_file: cannot load an Ed25519 private key from {path} ({exc}); "
            "create one with `tollhouse audit keygen --signing-key FILE`"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"audit.signing_key_file: {path} is not an Ed25519 key")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """A PEM public key, or the public half of a PEM private key."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the public key {path}: {exc.strerror}") from exc
    try:
        if b"PRIVATE KEY" in data:
            return load_signing_key(path).public_key()
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ConfigError(f"{path}: not a PEM Ed25519 public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path}: not an Ed25519 public key")
    return key


def trusted_keys(
    signing_key_file: str | Path | None, verify_key_files: Iterable[str | Path]
) -> dict[str, Ed25519PublicKey]:
    """The public keys checkpoints are checked against, by key id: the signing key's own
    and every configured verification key (older keys after a rotation)."""
    keys: list[Ed25519PublicKey] = []
    if signing_key_file:
        keys.append(load_signing_key(signing_key_file).public_key())
    keys.extend(load_public_key(path) for path in verify_key_files)
    return {key_id_of(key): key for key in keys}


def generate_signing_key() -> tuple[bytes, bytes]:
    """A new key pair as (private PEM, public PEM)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@dataclass(frozen=True, slots=True)
class Head:
    chain_id: str
    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A stored checkpoint: ``body`` is the exact signed text."""

    id: int
    created_at: dt.datetime
    key_id: str
    previous: str
    digest: str
    body: str
    signature: str

    @property
    def heads(self) -> list[Head]:
        doc = orjson.loads(self.body)
        return [Head(h["chain"], int(h["seq"]), h["hash"]) for h in doc["heads"]]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "key_id": self.key_id,
            "previous": self.previous,
            "digest": self.digest,
            "body": self.body,
            "signature": self.signature,
        }


def checkpoint_of(row: AuditCheckpoint) -> Checkpoint:
    return Checkpoint(
        row.id, row.created_at, row.key_id, row.previous, row.digest, row.body, row.signature
    )


def verify_signature(checkpoint: Checkpoint, trusted: dict[str, Ed25519PublicKey]) -> str | None:
    """None if ``checkpoint`` is intact and signed by a trusted key; else what is wrong."""
    if hashlib.sha256(checkpoint.body.encode("utf-8")).hexdigest() != checkpoint.digest:
        return "its digest does not match its body"
    public = trusted.get(checkpoint.key_id)
    if public is None:
        return f"it is signed by key {checkpoint.key_id}, which is not trusted"
    if (
        base64.b64encode(base64.b64decode(checkpoint.signature + "==", validate=False)).decode(
            "ascii"
        )
        != checkpoint.signature
    ):
        return "its signature is not canonical Base64"
    try:
        public.verify(
            base64.b64decode(checkpoint.signature, validate=True), checkpoint.body.encode("utf-8")
        )
    except (InvalidSignature, ValueError, binascii.Error):
        return "its signature is not valid"
    doc = orjson.loads(checkpoint.body)
    if doc.get("format") != CHECKPOINT_FORMAT or doc.get("previous") != checkpoint.previous:
        return "its body does not match its stored fields"
    return None


class Checkpointer:
    """Signs the chain heads that moved since the last checkpoint."""

    def __init__(
        self,
        engine: Engine,
        key: Ed25519PrivateKey,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._engine = engine
        self._key = key
        self._key_id = key_id_of(key.public_key())
        self._clock = clock

    def write(self) -> Checkpoint | None:
        """Sign and store one checkpoint; None when no chain moved. Another signer
        inserting at the same moment makes this one retry on top of it."""
        for _ in range(5):
            try:
                return self._write_once()
            except IntegrityError:
                continue  # someone else took this "previous"; build on theirs
        raise RuntimeError("could not write an audit checkpoint: five concurrent conflicts")

    def _write_once(self) -> Checkpoint | None:
        with self._engine.begin() as connection:
            moved = connection.execute(
                select(AuditChain.chain_id, AuditChain.head_seq, AuditChain.head_hash)
                .where(AuditChain.head_seq != AuditChain.signed_seq)
                .order_by(AuditChain.chain_id)
            ).all()
            if not moved:
                return None
            last = connection.execute(
                select(AuditCheckpoint.digest).order_by(AuditCheckpoint.id.desc()).limit(1)
            ).scalar_one_or_none()
            now = self._clock()
            previous = last or GENESIS
            body = _body(now, previous, [Head(c, s, h) for c, s, h in moved])
            digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
            signature = base64.b64encode(self._key.sign(body.encode("utf-8"))).decode("ascii")
            new_id = connection.execute(
                insert(AuditCheckpoint)
                .values(
                    created_at=now,
                    key_id=self._key_id,
                    previous=previous,
                    digest=digest,
                    body=body,
                    signature=signature,
                )
                .returning(AuditCheckpoint.id)
            ).scalar_one()
            for chain_id, seq, _ in moved:
                connection.execute(
                    update(AuditChain).where(AuditChain.chain_id == chain_id).values(signed_seq=seq)
                )
        return Checkpoint(new_id, now, self._key_id, previous, digest, body, signature)


def _body(created_at: dt.datetime, previous: str, heads: Iterable[Head]) -> str:
    doc = {
        "format": CHECKPOINT_FORMAT,
        "created_at": created_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "previous": previous,
        "heads": [{"chain": h.chain_id, "seq": h.seq, "hash": h.hash} for h in heads],
    }
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode("utf-8")


def iter_checkpoints(engine: Engine) -> Iterator[Checkpoint]:
    """Every stored checkpoint, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.id))
        for row in rows:
            yield Checkpoint(
                row.id,
                row.created_at,
                row.key_id,
                row.previous,
                row.digest,
                row.body,
                row.signature,
            )
