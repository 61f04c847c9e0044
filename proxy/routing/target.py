"""A concrete place to send one attempt, and the record each attempt leaves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from governance.config.schema import DeploymentConfig
from proxy.upstream.adapter import UpstreamAdapter


@dataclass(frozen=True, slots=True)
class Target:
    adapter: UpstreamAdapter
    deployment: DeploymentConfig


@dataclass(slots=True)
class Attempt:
    upstream: str
    model: str
    outcome: str  # "ok" or an error code
    http_status: int | None
    duration_ms: float
    # The upstream's watched response headers (``fingerprint_headers``) of a success.
    headers: dict[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        attempt: dict[str, Any] = {
            "upstream": self.upstream,
            "model": self.model,
            "outcome": self.outcome,
            "http_status": self.http_status,
            "duration_ms": round(self.duration_ms, 3),
        }
        if self.headers:
            attempt["headers"] = self.headers
        return attempt
