"""Routing: the order of a request's deployments, retries, fallback and replica state."""

from proxy.routing.plan import RoutePlan
from proxy.routing.replicas import Lease, ReplicaBoard
from proxy.routing.router import Routed, Router
from proxy.routing.target import Attempt, Target

__all__ = ["Attempt", "Lease", "ReplicaBoard", "RoutePlan", "Routed", "Router", "Target"]
