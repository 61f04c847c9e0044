"""What a shadow policy version would have changed, from the audit trail.

The proxy records on each ``admitted`` record the active version's ``decision`` and, while
a shadow is attached, the shadow's: ``{"version", "action", "model", "destinations",
"rules", ...}``, or ``{"version", "error"}`` when evaluating the shadow failed. A request
"would change" when the shadow's action, model or destinations differ from the active
decision's. Counting happens in the database (grouped), so the report costs one pass
over the matching rows and never holds them in memory.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, sessionmaker

from governance.audit.records import RecordKind
from governance.db.models import AuditRecord

FAILED = "error"  # the shadow action shown when evaluating the shadow failed


@dataclass(frozen=True, slots=True)
class AppCounts:
    evaluated: int
    changed: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ShadowReport:
    """Counts over the admitted requests a shadow version was evaluated on."""

    name: str
    since: dt.datetime | None
    evaluated: int
    changed: int
    failed: int
    transitions: dict[tuple[str, str], int]  # (active action, shadow action) -> requests
    versions: dict[tuple[int | None, int | None], int]  # (active, shadow version) -> requests
    by_app: dict[str, AppCounts]
    failures: dict[str, int]  # shadow evaluation errors -> requests (the commonest few)
    examples: tuple[str, ...]  # request ids of changed requests, newest first


def shadow_report(
    sessions: sessionmaker[Session],
    name: str,
    since: dt.datetime | None = None,
    *,
    examples: int = 10,
    top_failures: int = 5,
) -> ShadowReport:
    """Compare active and shadow decisions of policy ``name`` (from ``since`` on)."""
    with sessions() as session:
        fields = _Fields(session.get_bind().dialect.name)
        where = [
            AuditRecord.kind == RecordKind.ADMITTED.value,
            AuditRecord.policy_name == name,
            AuditRecord.shadow.is_not(None),
            fields.shadow_version.is_not(None),
        ]
        if since is not None:
            where.append(AuditRecord.recorded_at >= since)
        changed = case((fields.changed, 1), else_=0)
        groups = session.execute(
            select(
                AuditRecord.app,
                AuditRecord.policy_version,
                fields.shadow_version,
                fields.active_action,
                fields.shadow_action,
                func.count(),
                func.sum(changed),
            )
            .where(*where)
            .group_by(
                AuditRecord.app,
                AuditRecord.policy_version,
                fields.shadow_version,
                fields.active_action,
                fields.shadow_action,
            )
        ).all()
        failures = session.execute(
            select(fields.shadow_error, func.count())
            .where(*where, fields.shadow_action.is_(None))
            .group_by(fields.shadow_error)
            .order_by(func.count().desc(), fields.shadow_error)
            .limit(top_failures)
        ).all()
        example_ids = session.scalars(
            select(AuditRecord.request_id)
            .where(*where, fields.changed)
            .order_by(AuditRecord.id.desc())
            .limit(examples)
        ).all()

    transitions: dict[tuple[str, str], int] = {}
    versions: dict[tuple[int | None, int | None], int] = {}
    apps: dict[str, tuple[int, int]] = {}
    evaluated = changes = failed = 0
    for app, active_v, shadow_v, active_a, shadow_a, count, changed_count in groups:
        n, c = int(count), int(changed_count or 0)
        evaluated += n
        changes += c
        if shadow_a is None:
            failed += n
        key = (str(active_a or "-"), str(shadow_a or FAILED))
        transitions[key] = transitions.get(key, 0) + n
        versions[(active_v, shadow_v)] = versions.get((active_v, shadow_v), 0) + n
        seen = apps.get(app, (0, 0))
        apps[app] = (seen[0] + n, seen[1] + c)
    return ShadowReport(
        name=name,
        since=since,
        evaluated=evaluated,
        changed=changes,
        failed=failed,
        transitions=dict(sorted(transitions.items(), key=lambda kv: (-kv[1], kv[0]))),
        versions=dict(sorted(versions.items(), key=lambda kv: (-kv[1], str(kv[0])))),
        by_app={
            app: AppCounts(n, c)
            for app, (n, c) in sorted(apps.items(), key=lambda kv: (-kv[1][1], kv[0]))
        },
        failures={str(message or "(no message)"): int(n) for message, n in failures},
        examples=tuple(example_ids),
    )


class _Fields:
    """The JSON fields the report reads, as SQL expressions for one dialect."""

    def __init__(self, dialect: str) -> None:
        decision, shadow = AuditRecord.decision, AuditRecord.shadow
        self.active_action = decision["action"].as_string()
        self.shadow_action = shadow["action"].as_string()
        self.shadow_version = shadow["version"].as_integer()
        self.shadow_error = shadow["error"].as_string()
        active_model = decision["model"].as_string()
        shadow_model = shadow["model"].as_string()
        active_dest: ColumnElement[Any]
        shadow_dest: ColumnElement[Any]
        if dialect == "postgresql":  # json has no equality; compare as jsonb
            active_dest = decision["destinations"].as_json().cast(JSONB)
            shadow_dest = shadow["destinations"].as_json().cast(JSONB)
        else:  # SQLite's json_extract returns arrays as minified JSON text
            active_dest = func.json_extract(decision, "$.destinations")
            shadow_dest = func.json_extract(shadow, "$.destinations")
        self.changed = and_(
            self.shadow_action.is_not(None),
            or_(
                self.active_action.is_distinct_from(self.shadow_action),
                active_model.is_distinct_from(shadow_model),
                active_dest.is_distinct_from(shadow_dest),
            ),
        )
