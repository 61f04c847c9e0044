"""``/admin/upstreams``: what this proxy process knows about each upstream right now."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from governance.access import Permission
from proxy.admin.state import Acting, State

router = APIRouter(tags=["operations"])


class UpstreamStatus(BaseModel):
    upstream: str
    kind: str
    destination: str
    status: str = Field(description="ready, cooling (after failures) or unhealthy (probe)")
    outstanding: int = Field(description="this process's requests in flight there")
    consecutive_failures: int
    healthy: bool | None = Field(description="the last health check; null: none configured")
    cooling_for_s: float | None = None
    health_detail: str | None = None
    load: dict[str, Any] | None = Field(
        default=None, description="the last fresh scrape of the replica's own metrics"
    )


@router.get(
    "/upstreams",
    response_model=list[UpstreamStatus],
    summary="Upstream state as this process sees it (ops:read)",
)
async def upstreams(state: State, actor: Acting) -> list[UpstreamStatus]:
    """Cooldowns, health checks, scraped load and requests in flight. Each proxy worker
    keeps its own view: behind a load balancer, ask each one."""
    actor.require(Permission.OPS_READ)
    configured = {u.name: u for u in state.settings.upstreams}
    rows = []
    for row in state.board.snapshot():
        upstream = configured[row["upstream"]]
        rows.append(UpstreamStatus(kind=upstream.kind, destination=upstream.destination, **row))
    return rows
