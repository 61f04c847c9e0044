"""Liveness and readiness for load balancers and orchestrators."""

from starlette.requests import Request
from starlette.responses import JSONResponse

from proxy.routes.common import state_of


async def live(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> JSONResponse:
    """Not ready while the audit store is failing: requests would be refused anyway."""
    writer = state_of(request).writer
    ok = writer.healthy
    body = {"status": "ok" if ok else "audit_unavailable", "audit_queue": writer.queued_records}
    return JSONResponse(body, status_code=200 if ok else 503)
