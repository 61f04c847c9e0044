"""Publishing and activating policy documents in tests, as operators would: one local
operator authors the version, another approves and activates it (four eyes)."""

from __future__ import annotations

from typing import Any

import yaml
from sqlalchemy.orm import Session, sessionmaker

from governance.access import Principal
from governance.policy.schema import Policy
from governance.policy.store import PolicyStore

AUTHOR = Principal.operator("tests-author")
APPROVER = Principal.operator("tests-approver")


def activate(sessions: sessionmaker[Session], document: dict[str, Any]) -> int:
    """Publish ``document`` (idempotent for an unchanged body), approve it and make it
    active."""
    store = PolicyStore(sessions)
    policy = Policy.model_validate(document)
    version = store.publish(policy, yaml.safe_dump(document), AUTHOR).version
    store.approve(policy.name, version, APPROVER)
    store.activate(policy.name, version, APPROVER)
    return version
