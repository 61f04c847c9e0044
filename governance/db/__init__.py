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
from governance.db.traffic_models import AuditTag, TrafficHourly

__all__ = [
    "AlertRecord",
    "ApiKey",
    "AuditRecord",
    "AuditTag",
    "Base",
    "CanaryBaseline",
    "CanarySample",
    "ModelFingerprint",
    "MonitorCursor",
    "MonitorRun",
    "PriceRecord",
    "RateCounter",
    "SpendDaily",
    "TrafficHourly",
    "UsageCounter",
    "make_engine",
    "normalise_url",
    "session_factory",
]
