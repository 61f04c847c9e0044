"""The admin HTTP API under ``/admin/``: principals and keys, policies, the audit trail.

A FastAPI application mounted into the proxy (for its OpenAPI schema and request
validation); every route authenticates a principal's key and the services it calls
check that principal's roles.
"""

from proxy.admin.app import build_admin_app

__all__ = ["build_admin_app"]
