"""Publishing and activating policy documents in tests, as an operator would."""

from __future__ import annotations

from typing import Any

import yaml
from sqlalchemy.orm import Session, sessionmaker

from governance.policy.schema import Policy
from governance.policy.store import PolicyStore


def activate(sessions: sessionmaker[Session], document: dict[str, Any]) -> int:
    """Publish ``document`` (idempotent for an unchanged body) and make it active."""
    store = PolicyStore(sessions)
    policy = Policy.model_validate(document)
    version = store.publish(policy, yaml.safe_dump(document), "tests").version
    store.activate(policy.name, version, "tests")
    return version
