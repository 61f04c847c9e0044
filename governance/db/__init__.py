"""SQLAlchemy 2 storage: typed models, engines for SQLite and PostgreSQL."""

from governance.db.engine import make_engine, normalise_url, session_factory
from governance.db.models import ApiKey, AuditRecord, Base
from governance.db.monitor_models import (
    AlertRecord,
    CanaryBaseline,
    CanarySample,
    ModelFingerprint,
    MonitorCursor,
    MonitorRun,
)
from governance.db.spend_models import (
    PriceRecord,
    RateCounter,
    SpendDaily,
    UsageCounter,
)

__all__ = [
    "AlertRecord",
    "ApiKey",
    "AuditRecord",
    "Base",
    "CanaryBaseline",
    "CanarySample",
    "ModelFingerprint",
    "MonitorCursor",
    "MonitorRun",
    "PriceRecord",
    "RateCounter",
    "SpendDaily",
    "UsageCounter",
    "make_engine",
    "normalise_url",
    "session_factory",
]
