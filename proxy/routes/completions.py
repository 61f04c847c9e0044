"""``POST /v1/completions``."""

from starlette.requests import Request
from starlette.responses import Response

from proxy.calls import Endpoint
from proxy.pipeline import EndpointSpec
from proxy.protocol.completions import CompletionRequest
from proxy.routes.common import forward

SPEC = EndpointSpec(Endpoint.COMPLETIONS, "/completions", CompletionRequest, streamable=True)


async def create(request: Request) -> Response:
    return await forward(request, SPEC)
