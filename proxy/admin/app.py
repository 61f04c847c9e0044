"""The admin FastAPI app: routers, the OpenAI-style error format, the OpenAPI schema."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from governance.errors import TollhouseError
from proxy.admin import routes_access, routes_audit, routes_ops, routes_policies
from proxy.errors import handle_tollhouse_error, handle_unexpected


def build_admin_app() -> FastAPI:
    """The app to mount at ``/admin``; its state is set by the proxy's lifespan."""
    app = FastAPI(
        title="Tollhouse admin API",
        version="1",
        description="Principals and keys, policy versions, the audit trail, upstream state. Every "
        "route "
        "needs `Authorization: Bearer <key>`; what a key may do depends on its principal's "
        "roles (docs/access.md). Errors use OpenAI's format.",
        docs_url=None,  # the interactive docs load assets from a CDN; Tollhouse is offline
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    for module in (routes_access, routes_policies, routes_audit, routes_ops):
        app.include_router(module.router)
    app.add_exception_handler(TollhouseError, handle_tollhouse_error)
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, handle_unexpected)
    return app


def _error(status: int, message: str, type_: str, code: str, param: str | None = None) -> Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    param = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    return _error(
        400,
        f"{param or 'request'}: {first.get('msg')}",
        "invalid_request_error",
        "invalid_request",
        param or None,
    )


async def _http_error(_request: Request, exc: HTTPException) -> Response:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _error(exc.status_code, str(exc.detail), "invalid_request_error", code)
