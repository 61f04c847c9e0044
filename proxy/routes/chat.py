"""``POST /v1/chat/completions``."""

from starlette.requests import Request
from starlette.responses import Response

from proxy.calls import Endpoint
from proxy.pipeline import EndpointSpec
from proxy.protocol.chat import ChatCompletionRequest
from proxy.routes.common import forward

SPEC = EndpointSpec(Endpoint.CHAT, "/chat/completions", ChatCompletionRequest, streamable=True)


async def create(request: Request) -> Response:
    return await forward(request, SPEC)
