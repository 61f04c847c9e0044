"""What the admin routes share, built once in the proxy's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from governance.access import Principal
from governance.access.principals import PrincipalService
from governance.audit.checkpoint import Checkpointer
from governance.audit.reader import AuditReader
from governance.audit.retention import Retention
from governance.config.schema import Settings
from governance.errors import ServiceUnavailableError
from governance.keys import KeyService
from governance.policy.store import PolicyStore
from proxy.auth import Authenticator
from proxy.routing import ReplicaBoard


@dataclass(frozen=True, slots=True)
class AdminState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    authenticator: Authenticator
    principals: PrincipalService
    keys: KeyService
    policies: PolicyStore
    reader: AuditReader
    retention: Retention
    checkpointer: Checkpointer | None
    board: ReplicaBoard  # this process's view of the upstreams


def admin_state(request: Request) -> AdminState:
    state = getattr(request.app.state, "admin", None)
    if not isinstance(state, AdminState):
        raise ServiceUnavailableError("the admin API is starting", code="starting")
    return state


State = Annotated[AdminState, Depends(admin_state)]


async def acting_principal(request: Request, state: State) -> Principal:
    """The principal whose bearer key came with the request (any role)."""
    return await state.authenticator.authenticate(
        request.headers.get("authorization"), permission=None
    )


Acting = Annotated[Principal, Depends(acting_principal)]
