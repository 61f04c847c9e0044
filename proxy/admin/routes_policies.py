"""``/admin/policies``: versions, four-eyes approval, activation, history."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from governance.access import Permission
from governance.policy.document import parse_policy
from proxy.admin.state import Acting, State
from proxy.admin.views import jsonable

router = APIRouter(prefix="/policies", tags=["policies"])


class PublishIn(BaseModel):
    source: str = Field(description="the policy document (YAML)")
    comment: str | None = None


class CommentIn(BaseModel):
    comment: str | None = None


class ActivateIn(BaseModel):
    version: int = Field(ge=1)
    comment: str | None = None


@router.get("", summary="Published versions (policy:read)")
async def list_versions(state: State, actor: Acting, name: str | None = None) -> list[Any]:
    actor.require(Permission.POLICY_READ)
    return [jsonable(v) for v in await asyncio.to_thread(state.policies.versions, name)]


@router.post("", status_code=201, summary="Publish a new version (policy:publish)")
async def publish(state: State, actor: Acting, body: PublishIn) -> dict[str, Any]:
    actor.require(Permission.POLICY_PUBLISH)
    policy = parse_policy(body.source, "request body")
    version = await asyncio.to_thread(
        state.policies.publish, policy, body.source, actor, body.comment
    )
    return dict(jsonable(version))


@router.get("/{name}/versions/{version}", summary="One version (policy:read)")
async def get_version(state: State, actor: Acting, name: str, version: int) -> dict[str, Any]:
    actor.require(Permission.POLICY_READ)
    return dict(jsonable(await asyncio.to_thread(state.policies.get, name, version)))


@router.post(
    "/{name}/versions/{version}/approve",
    summary="Approve a version (policy:approve; four eyes: not its author)",
)
async def approve(
    state: State, actor: Acting, name: str, version: int, body: CommentIn
) -> dict[str, Any]:
    done = await asyncio.to_thread(state.policies.approve, name, version, actor, body.comment)
    return dict(jsonable(done))


@router.post("/{name}/activate", summary="Activate an approved version (policy:approve)")
async def activate(state: State, actor: Acting, name: str, body: ActivateIn) -> dict[str, Any]:
    change = await asyncio.to_thread(
        state.policies.activate, name, body.version, actor, body.comment
    )
    return dict(jsonable(change))


@router.post("/{name}/rollback", summary="Undo the last activation (policy:approve)")
async def rollback(state: State, actor: Acting, name: str, body: CommentIn) -> dict[str, Any]:
    change = await asyncio.to_thread(state.policies.rollback, name, actor, body.comment)
    return dict(jsonable(change))


@router.get("/{name}/history", summary="Activation history (policy:read)")
async def history(state: State, actor: Acting, name: str) -> list[Any]:
    actor.require(Permission.POLICY_READ)
    return [jsonable(h) for h in await asyncio.to_thread(state.policies.history, name)]
