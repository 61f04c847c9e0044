"""Audit entries for administrative changes (policy publish, activation, shadow, ...).

They are written by the service making the change, in the same transaction as the
change itself, so a change and its audit record commit or fail together.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from governance.audit.records import AuditEntry, RecordKind

ADMIN_APP = "tollhouse-admin"


def admin_entry(
    *,
    endpoint: str,
    channel: str,
    recorded_at: dt.datetime,
    policy_name: str | None,
    policy_version: int | None,
    details: Mapping[str, Any],
) -> AuditEntry:
    """One ``admin`` record: ``endpoint`` names the change, ``details`` what it was."""
    return AuditEntry(
        request_id=f"adm_{uuid.uuid4().hex}",
        kind=RecordKind.ADMIN,
        recorded_at=recorded_at,
        app=ADMIN_APP,
        team=None,
        key_id=channel,
        endpoint=endpoint,
        status="ok",
        content_retention="none",
        policy_name=policy_name,
        policy_version=policy_version,
        decision=dict(details),
    )
