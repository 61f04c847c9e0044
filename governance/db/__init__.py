"""SQLAlchemy 2 storage: typed models, engines for SQLite and PostgreSQL."""

from governance.db.engine import make_engine, normalise_url, session_factory
from governance.db.models import ApiKey, AuditRecord, Base
from governance.db.spend_models import (
    AlertRecord,
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
    "PriceRecord",
    "RateCounter",
    "SpendDaily",
    "UsageCounter",
    "make_engine",
    "normalise_url",
    "session_factory",
]
