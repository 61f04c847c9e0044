"""Which deployments a request may use, the order they are tried in, and why (both kept in
the audit record).

At admission, `RoutePlan.build` keeps the deployments whose destination the policy permits
for the request (the admitted record lists them, and the ones ruled out). Just before the
first attempt, `RoutePlan.order` ranks them by the replicas' state at that moment:

1. ready deployments with a weight: least estimated load per unit of weight first
   (`ReplicaBoard.estimate`); equal loads are drawn by weight;
2. ready weight-0 ("fallback only") deployments, in file order;
3. deployments cooling down after failures or failing their health check, in file order:
   tried only when everything else failed, rather than refusing the request outright.

Ordering at the last moment matters under bursts: requests admitted together (their
admitted records share one commit) would otherwise all see the same loads and pile onto
the same replica.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from governance.config.schema import DeploymentConfig, Destination, ModelConfig
from proxy.routing.replicas import ReplicaBoard
from proxy.routing.target import Target
from proxy.upstream.adapter import UpstreamAdapter


@dataclass(slots=True)
class RoutePlan:
    permitted: list[Target]  # in file order
    forbidden: tuple[Destination, ...]  # destinations the policy ruled out (sorted)
    excluded: list[dict[str, Any]]  # the deployments ruled out, as the audit keeps them
    targets: list[Target] = field(default_factory=list)  # `order`ed: the order of attempts
    ranked: list[dict[str, Any]] = field(default_factory=list)  # what `order` saw, per target
    reason: str | None = None  # why the first target comes first

    @classmethod
    def build(
        cls,
        model: ModelConfig,
        permitted: Collection[Destination],
        adapters: Mapping[str, UpstreamAdapter],
    ) -> RoutePlan:
        targets: list[Target] = []
        excluded: list[dict[str, Any]] = []
        forbidden: set[Destination] = set()
        for deployment in model.deployments:
            adapter = adapters[deployment.upstream]
            destination = adapter.destination
            if destination in permitted:
                targets.append(Target(adapter, deployment))
            else:
                forbidden.add(destination)
                excluded.append(
                    {
                        **_named(deployment),
                        "excluded": f"policy forbids {destination} destinations for this request",
                    }
                )
        return cls(targets, tuple(sorted(forbidden)), excluded)

    def order(self, board: ReplicaBoard, rng: random.Random) -> list[Target]:
        """Rank the permitted deployments by the replicas' state now (module docstring)."""
        now = board.now()
        weighted: list[tuple[float, float, Target, dict[str, Any]]] = []
        fallbacks: list[tuple[Target, dict[str, Any]]] = []
        resting: list[tuple[Target, dict[str, Any]]] = []
        for target in self.permitted:
            deployment = target.deployment
            state = board.state(deployment.upstream)
            load = board.estimate(state, now)
            entry = {**_named(deployment), "load": round(load, 2)}
            scraped = board.fresh_load(state, now)
            if scraped is not None and scraped.kv_cache is not None:
                entry["kv_cache"] = round(scraped.kv_cache, 3)
            status = board.status(state, now)
            if status != "ready":
                entry["status"] = status
                resting.append((target, entry))
            elif deployment.weight > 0:
                # Efraimidis-Spirakis key: a weighted draw among equally loaded deployments.
                draw = rng.random() ** (1.0 / deployment.weight)
                weighted.append((load / deployment.weight, -draw, target, entry))
            else:
                fallbacks.append((target, entry))
        weighted.sort(key=lambda item: (item[0], item[1]))
        ordered = [(t, e) for _, _, t, e in weighted] + fallbacks + resting
        self.targets = [t for t, _ in ordered]
        self.ranked = [e for _, e in ordered]
        self.reason = _reason(weighted, fallbacks, resting)
        return self.targets

    def trace(self, chosen: Target | None = None) -> dict[str, Any]:
        """The routing decision as the audit record keeps it: before the first attempt, the
        candidates and the deployments ruled out; after, their ranks, loads and the one
        that answered."""
        routing: dict[str, Any] = {}
        if self.reason is None:
            routing["candidates"] = [_named(t.deployment) for t in self.permitted]
        else:
            routing["reason"] = self.reason
            routing["candidates"] = [
                {**entry, "rank": rank} for rank, entry in enumerate(self.ranked, start=1)
            ]
        if self.excluded:
            routing["excluded"] = [dict(e) for e in self.excluded]
        if chosen is not None:
            routing["chosen"] = chosen.adapter.name
        return routing


def _named(deployment: DeploymentConfig) -> dict[str, Any]:
    return {"upstream": deployment.upstream, "model": deployment.model}


def _reason(
    weighted: list[tuple[float, float, Target, dict[str, Any]]],
    fallbacks: list[tuple[Target, dict[str, Any]]],
    resting: list[tuple[Target, dict[str, Any]]],
) -> str:
    if weighted:
        if len(weighted) == 1:
            return "the only ready weighted deployment"
        if weighted[0][0] < weighted[1][0]:
            return f"least load per weight ({weighted[0][0]:g}) of {len(weighted)} ready"
        return f"weighted draw among {len(weighted)} ready deployments with equal load"
    if fallbacks:
        return "no weighted deployment is ready: fallback"
    return "every permitted deployment is cooling down or unhealthy: trying them anyway"
