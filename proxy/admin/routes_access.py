"""``/admin/principals`` and ``/admin/keys`` (principals:manage)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from governance.access import Permission
from proxy.admin.state import Acting, State
from proxy.admin.views import jsonable

router = APIRouter(tags=["principals and keys"])


class PrincipalIn(BaseModel):
    name: str
    roles: list[str] = Field(min_length=1)
    app: str | None = None
    team: str | None = None
    description: str | None = None


class RolesIn(BaseModel):
    roles: list[str] = Field(min_length=1)


class KeyIn(BaseModel):
    principal: str = Field(description="name or id of the principal the key belongs to")
    description: str | None = None
    expires_in_s: int | None = Field(default=None, gt=0)


class RotateIn(BaseModel):
    overlap_s: int = Field(default=86_400, ge=0, description="how long the old key stays valid")


class CreatedKeyOut(BaseModel):
    key: str = Field(description="the whole key: shown once, never stored")
    key_id: str
    prefix: str
    principal: str
    expires_at: dt.datetime | None


def _created(created: Any) -> CreatedKeyOut:
    return CreatedKeyOut(
        key=created.secret,
        key_id=created.principal.key_id,
        prefix=created.principal.prefix,
        principal=created.principal.name,
        expires_at=created.expires_at,
    )


@router.get("/principals", summary="List principals")
async def list_principals(
    state: State, actor: Acting, include_disabled: bool = False
) -> list[dict[str, Any]]:
    actor.require(Permission.PRINCIPALS_MANAGE)
    found = await asyncio.to_thread(state.principals.list, include_disabled)
    return [jsonable(p) for p in found]


@router.post("/principals", status_code=201, summary="Create a principal")
async def create_principal(state: State, actor: Acting, body: PrincipalIn) -> dict[str, Any]:
    created = await asyncio.to_thread(
        lambda: state.principals.create(
            body.name,
            body.roles,
            actor=actor,
            app=body.app,
            team=body.team,
            description=body.description,
        )
    )
    return dict(jsonable(created))


@router.put("/principals/{name}/roles", summary="Replace a principal's roles")
async def set_roles(state: State, actor: Acting, name: str, body: RolesIn) -> dict[str, Any]:
    updated = await asyncio.to_thread(
        lambda: state.principals.set_roles(name, body.roles, actor=actor)
    )
    return dict(jsonable(updated))


@router.post("/principals/{name}/disable", summary="Disable a principal and its keys")
async def disable_principal(state: State, actor: Acting, name: str) -> dict[str, Any]:
    done = await asyncio.to_thread(lambda: state.principals.disable(name, actor=actor))
    return dict(jsonable(done))


@router.get("/keys", summary="List keys (never their secrets)")
async def list_keys(
    state: State, actor: Acting, include_revoked: bool = False
) -> list[dict[str, Any]]:
    actor.require(Permission.PRINCIPALS_MANAGE)
    found = await asyncio.to_thread(state.keys.list, include_revoked)
    return [jsonable(k) for k in found]


@router.post("/keys", status_code=201, response_model=CreatedKeyOut, summary="Create a key")
async def create_key(state: State, actor: Acting, body: KeyIn) -> CreatedKeyOut:
    expires = (
        dt.datetime.now(dt.UTC) + dt.timedelta(seconds=body.expires_in_s)
        if body.expires_in_s
        else None
    )
    created = await asyncio.to_thread(
        lambda: state.keys.create(body.principal, body.description, expires, actor=actor)
    )
    return _created(created)


@router.post(
    "/keys/{key}/rotate",
    status_code=201,
    response_model=CreatedKeyOut,
    summary="Replace a key; the old one stays valid for the overlap",
)
async def rotate_key(state: State, actor: Acting, key: str, body: RotateIn) -> CreatedKeyOut:
    created = await asyncio.to_thread(
        lambda: state.keys.rotate(key, dt.timedelta(seconds=body.overlap_s), actor=actor)
    )
    return _created(created)


@router.post("/keys/{key}/revoke", summary="Revoke a key now")
async def revoke_key(state: State, actor: Acting, key: str) -> dict[str, Any]:
    done = await asyncio.to_thread(lambda: state.keys.revoke(key, actor=actor))
    return dict(jsonable(done))
