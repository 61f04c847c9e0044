"""``GET /v1/models``: the aliases the caller's app may use."""

from starlette.requests import Request
from starlette.responses import Response

from proxy.protocol.common import ModelCard, ModelList
from proxy.routes.common import state_of


async def list_models(request: Request) -> Response:
    state = state_of(request)
    principal = await state.authenticator.authenticate(request.headers.get("authorization"))
    allowed = state.settings.app(principal.app).models
    cards = [
        ModelCard(id=m.name) for m in state.settings.models if allowed is None or m.name in allowed
    ]
    return Response(ModelList(data=cards).model_dump_json(), media_type="application/json")
