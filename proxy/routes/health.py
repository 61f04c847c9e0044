"""Liveness and readiness for load balancers and orchestrators."""

from starlette.requests import Request
from starlette.responses import JSONResponse

from proxy.routes.common import state_of


async def live(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> JSONResponse:
    """Not ready while the audit store is failing or no policy is active: requests would
    be refused anyway."""
    state = state_of(request)
    writer = state.writer
    policies = state.policies.current()
    status = "ok"
    if not writer.healthy:
        status = "audit_unavailable"
    elif policies.active is None:
        status = "policy_unavailable"
    ok = status == "ok"
    body = {
        "status": status,
        "audit_queue": writer.queued_records,
        "policy": state.policies.name,
        "policy_version": policies.active.version if policies.active else None,
    }
    return JSONResponse(body, status_code=200 if ok else 503)
