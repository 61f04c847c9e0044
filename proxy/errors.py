"""Rendering errors in OpenAI's wire format: ``{"error": {message, type, param, code}}``."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from governance.errors import LimitExceededError, TollhouseError

log = logging.getLogger(__name__)


def error_payload(error: TollhouseError) -> dict[str, Any]:
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.code,
        }
    }


def error_response(error: TollhouseError, request_id: str | None = None) -> Response:
    headers = {"x-request-id": request_id} if request_id else {}
    if error.status == 503:
        headers["Retry-After"] = "1"
    if isinstance(error, LimitExceededError):
        headers.update(error.headers)
    return Response(
        orjson.dumps(error_payload(error)),
        status_code=error.status,
        media_type="application/json",
        headers=headers,
    )


async def handle_tollhouse_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TollhouseError)
    return error_response(exc, getattr(request.state, "request_id", None))


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s", request.url.path)
    return error_response(
        TollhouseError("The server had an error while processing your request.", status=500),
        getattr(request.state, "request_id", None),
    )
