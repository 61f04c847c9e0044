"""Audit entries for administrative actions: changes (a policy activated, a key created)
and reads of audit content.

They are appended to the shared chain by the service making the change, in the same
transaction as the change itself, so a change and its record commit or fail together.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from governance.access import Principal
from governance.audit.records import AuditEntry, RecordKind

ADMIN_APP = "tollhouse-admin"


def admin_entry(
    *,
    endpoint: str,
    actor: Principal,
    recorded_at: dt.datetime,
    details: Mapping[str, Any],
    policy_name: str | None = None,
    policy_version: int | None = None,
) -> AuditEntry:
    """One ``admin`` record: ``endpoint`` names the action (``policy.activate``,
    ``audit.export``, ...), ``details`` what it was; the actor's name is in ``details``."""
    return AuditEntry(
        request_id=f"adm_{uuid.uuid4().hex}",
        kind=RecordKind.ADMIN,
        recorded_at=recorded_at,
        app=ADMIN_APP,
        team=None,
        key_id=actor.key_id,
        endpoint=endpoint,
        status="ok",
        content_retention="none",
        policy_name=policy_name,
        policy_version=policy_version,
        decision={"actor": actor.name, **details},
    )
