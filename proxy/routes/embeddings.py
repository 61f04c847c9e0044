"""``POST /v1/embeddings``."""

from starlette.requests import Request
from starlette.responses import Response

from proxy.calls import Endpoint
from proxy.pipeline import EndpointSpec
from proxy.protocol.embeddings import EmbeddingRequest
from proxy.routes.common import forward

SPEC = EndpointSpec(Endpoint.EMBEDDINGS, "/embeddings", EmbeddingRequest, streamable=False)


async def create(request: Request) -> Response:
    return await forward(request, SPEC)
