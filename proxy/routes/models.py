"""``GET /v1/models``: the aliases the active policy lets the caller's app use."""

from starlette.requests import Request
from starlette.responses import Response

from proxy.protocol.common import ModelCard, ModelList
from proxy.routes.common import state_of


async def list_models(request: Request) -> Response:
    state = state_of(request)
    principal = await state.authenticator.authenticate(request.headers.get("authorization"))
    rules, _ = state.policies.active().policy.rules_for(principal.traffic_app, principal.team)
    allowed = rules.models
    cards = [
        ModelCard(id=m.name) for m in state.settings.models if allowed is None or m.name in allowed
    ]
    return Response(ModelList(data=cards).model_dump_json(), media_type="application/json")
