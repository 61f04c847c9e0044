"""What a policy change leaves behind: its errors, approval rows and admin audit records.

Used by `governance.policy.store.PolicyStore` inside the transaction of each change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from governance.access import Principal
from governance.audit.admin import admin_entry
from governance.audit.shared import append_shared
from governance.db.models import PolicyApprovalRecord, PolicyVersionRecord
from governance.errors import InvalidRequestError, TollhouseError
from governance.policy.versions import Approval, approval_of


class PolicyStateError(InvalidRequestError):
    """The requested change does not apply to the policy's current state."""

    code = "policy_state_conflict"


class FourEyesError(PolicyStateError):
    """Four eyes: the author of a version may not approve it."""

    code = "four_eyes"


class ApprovalRequiredError(PolicyStateError):
    """Four eyes: the version has no approval by someone other than its author."""

    code = "approval_required"


class PolicyIntegrityError(TollhouseError):
    """A stored version no longer matches its digest or no longer validates."""

    code = "policy_integrity"


def record_approval(
    session: Session,
    row: PolicyVersionRecord,
    actor: Principal,
    comment: str | None,
    at: dt.datetime,
    four_eyes: bool,
) -> Approval:
    """Store ``actor``'s approval of the version ``row`` and audit it."""
    approval = PolicyApprovalRecord(
        name=row.name, version=row.version, approver=actor.name, comment=comment, at=at
    )
    session.add(approval)
    session.flush()
    audit_change(
        session,
        at,
        "approve",
        row.name,
        row.version,
        None,
        actor,
        comment,
        {"author": row.author, "four_eyes": four_eyes},
    )
    return approval_of(approval, new=True)


def audit_change(
    session: Session,
    at: dt.datetime,
    action: str,
    name: str,
    version: int | None,
    previous: int | None,
    actor: Principal,
    comment: str | None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Append the ``policy.<action>`` admin record to the shared chain."""
    entry = admin_entry(
        endpoint=f"policy.{action}",
        actor=actor,
        recorded_at=at,
        policy_name=name,
        policy_version=version if version is not None else previous,
        details={
            "action": action,
            "version": version,
            "previous_version": previous,
            "comment": comment,
            **(extra or {}),
        },
    )
    append_shared(session, entry)
