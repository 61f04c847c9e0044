"""SQLAlchemy 2 storage: typed models, engines for SQLite and PostgreSQL."""

from governance.db.engine import make_engine, normalise_url, session_factory
from governance.db.models import ApiKey, AuditRecord, Base

__all__ = ["ApiKey", "AuditRecord", "Base", "make_engine", "normalise_url", "session_factory"]
