"""How the proxy chooses among a model alias's deployments: replica probes and cooldown.

The README's "Configuration reference" and docs/routing.md describe these fields.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Url = Annotated[str, Field(pattern=r"^https?://[^\s/]+.*$", max_length=2048)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProbeConfig(_Strict):
    """Background checks of one upstream (a vLLM replica, typically), off the request path."""

    health_url: Url | None = Field(
        default=None,
        description="GET in the background; any answer but 2xx (or none) marks the "
        "replica unhealthy until a check passes again (vLLM: http://HOST:PORT/health)",
    )
    metrics_url: Url | None = Field(
        default=None,
        description="Prometheus metrics scraped in the background: vllm:num_requests_running, "
        "vllm:num_requests_waiting and vllm:kv_cache_usage_perc inform least-load "
        "routing (vLLM: http://HOST:PORT/metrics)",
    )
    interval_s: float = Field(default=2.0, ge=0.05, le=3600, description="between two checks")
    timeout_s: float = Field(default=1.0, gt=0, le=60, description="per check")

    @model_validator(mode="after")
    def _something_to_probe(self) -> ProbeConfig:
        if self.health_url is None and self.metrics_url is None:
            raise ValueError("a probe needs health_url, metrics_url or both")
        return self


class RoutingConfig(_Strict):
    """Cooldown of failing upstreams and the freshness of scraped load."""

    cooldown_after_failures: int = Field(
        default=3,
        ge=0,
        le=100,
        description="consecutive retryable failures (5xx, 429, timeouts) that cool an "
        "upstream down; a refused connection cools it at once; 0: never cool down",
    )
    cooldown_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="the first cooldown; each further one in a row doubles it, up to "
        "cooldown_max_s. A cooled-down upstream is tried only after every other candidate",
    )
    cooldown_max_s: float = Field(default=300.0, gt=0, le=86400)
    load_stale_after_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="scraped load older than this is ignored (only this process's own "
        "outstanding requests count then)",
    )
