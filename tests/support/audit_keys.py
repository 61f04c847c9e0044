"""Test key material for the audit trail: a master key and a checkpoint signing key."""

from __future__ import annotations

from pathlib import Path

from governance.audit.checkpoint import generate_signing_key
from governance.audit.vault import MasterKey


def write_audit_keys(directory: Path) -> dict[str, str]:
    """Write ``master.key``, ``signing.pem`` and ``signing.pub.pem`` into ``directory``;
    return the ``audit`` config entries that use them."""
    directory.mkdir(parents=True, exist_ok=True)
    master = directory / "master.key"
    master.write_text(MasterKey.generate() + "\n", encoding="ascii")
    private, public = generate_signing_key()
    signing = directory / "signing.pem"
    signing.write_bytes(private)
    (directory / "signing.pub.pem").write_bytes(public)
    return {"master_key_file": str(master), "signing_key_file": str(signing)}
