"""The shape every model-calling route shares."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from governance.observability import REQUEST_ID
from proxy.asgi import ClientDisconnected, EventStreamResponse, cancel_on_disconnect
from proxy.pipeline import EndpointSpec
from proxy.state import AppState


def state_of(request: Request) -> AppState:
    state = request.app.state.tollhouse
    assert isinstance(state, AppState)
    return state


async def forward(request: Request, spec: EndpointSpec) -> Response:
    """Authenticate, admit, then answer in one piece or as a stream."""
    state = state_of(request)
    principal = await state.authenticator.authenticate(request.headers.get("authorization"))
    pipeline = state.pipeline
    call = pipeline.new_call(principal, spec.endpoint, getattr(request.state, "trace", None))
    request.state.request_id = call.request_id
    REQUEST_ID.set(call.request_id)  # log lines from here on carry it
    headers = {"x-request-id": call.request_id}
    await pipeline.admit(call, spec, await request.body())
    headers.update(call.headers)
    streaming = False
    try:
        if call.stream:
            relay = await cancel_on_disconnect(request.receive, pipeline.stream(call, spec))
            streaming = True  # the relay ends the hold when the stream ends
            return EventStreamResponse(relay.pump, headers)
        raw = await cancel_on_disconnect(request.receive, pipeline.unary(call, spec))
    except ClientDisconnected:
        # The pipeline recorded the disconnect; nobody is left to read an answer.
        return Response(status_code=499, headers=headers)
    finally:
        if not streaming:
            pipeline.release(call)
    return Response(raw, media_type="application/json", headers=headers)
