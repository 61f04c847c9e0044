"""The audit trail: records, the group-commit writer, export."""

from governance.audit.records import AuditEntry, Completion, RecordKind
from governance.audit.writer import AuditWriter

__all__ = ["AuditEntry", "AuditWriter", "Completion", "RecordKind"]
