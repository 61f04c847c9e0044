"""The ``monitors:`` section of ``tollhouse.yaml``: jobs, alert sinks, embeddings.

Monitor jobs run outside the proxy (``tollhouse monitors run JOB`` from cron, or
``tollhouse monitors schedule``). Three kinds:

- ``drift``: one (app, model alias, upstream) of recorded traffic, a current window
  against a reference (the trailing days before it, or a frozen baseline range);
- ``fingerprints``: every upstream's returned model string, ``system_fingerprint`` and
  watched response headers, read from the audit trail since the last run;
- ``canary``: a fixed prompt set sent through the proxy to one model alias, compared
  with that model's baseline batch.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Name = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$")
]
EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]
Url = Annotated[str, Field(pattern=r"^https?://[^\s/]+.*$")]
Severity = Literal["info", "warning", "critical"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SinkConfig(_Strict):
    """Where alerts go. ``url`` or ``url_env`` (the variable holding it: Slack webhook
    URLs are secrets)."""

    kind: Literal["webhook", "slack", "alertmanager"]
    url: Url | None = None
    url_env: EnvName | None = None
    min_severity: Severity = "info"
    timeout_s: float = Field(default=5.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10, description="extra tries per delivery")

    @model_validator(mode="after")
    def _one_url(self) -> SinkConfig:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url or url_env")
        return self


class AlertsConfig(_Strict):
    cooldown_s: float = Field(
        default=3600.0,
        ge=0,
        description="an alert resolves only after its condition has been absent this long "
        "(a signal flickering around its threshold pages once)",
    )
    repeat_s: float = Field(
        default=0.0,
        ge=0,
        description="re-notify a still-firing alert this often (0: never)",
    )
    sinks: list[SinkConfig] = Field(default_factory=list)


class EmbeddingsConfig(_Strict):
    """The embedding model of the drift jobs: the bundled all-MiniLM-L6-v2 (``local``),
    a sentence-transformers directory, or an OpenAI-compatible endpoint (an internal vLLM)."""

    kind: Literal["local", "endpoint", "off"] = "local"
    model_path: str | None = Field(
        default=None, description="local: a sentence-transformers directory (default: bundled)"
    )
    base_url: Url | None = Field(default=None, description="endpoint: base URL ending in /v1")
    model: str | None = Field(default=None, description="endpoint: the model name")
    api_key_env: EnvName | None = None

    @model_validator(mode="after")
    def _endpoint_complete(self) -> EmbeddingsConfig:
        if self.kind == "endpoint" and (self.base_url is None or self.model is None):
            raise ValueError("kind endpoint needs base_url and model")
        return self


class FrozenReference(_Strict):
    start: dt.datetime = Field(alias="from")
    end: dt.datetime = Field(alias="to")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _ordered(self) -> FrozenReference:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("from and to need a UTC offset, e.g. 2026-11-01T00:00:00Z")
        if self.end <= self.start:
            raise ValueError("to must be after from")
        return self


class _Job(_Strict):
    name: Name
    interval_s: float = Field(default=3600.0, gt=0, description="how often `schedule` runs it")


class DriftJob(_Job):
    kind: Literal["drift"]
    app: str = Field(min_length=1, max_length=128)
    model: str = Field(min_length=1, max_length=256, description="the model alias clients use")
    upstream: str = Field(min_length=1, max_length=128)
    window_h: float = Field(default=24.0, gt=0, description="the current window, in hours")
    trailing_days: int = Field(
        default=7, ge=1, le=28, description="reference: the days before the current window"
    )
    frozen: FrozenReference | None = Field(
        default=None, description="reference: a fixed baseline range instead"
    )
    min_requests: int = Field(default=100, ge=10)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    embedding_sample: int = Field(default=300, ge=20, le=5000)


class FingerprintsJob(_Job):
    kind: Literal["fingerprints"]
    interval_s: float = Field(default=300.0, gt=0)
    upstreams: list[str] = Field(
        default_factory=list, description="upstreams to watch (empty: all)"
    )


class CanaryJob(_Job):
    kind: Literal["canary"]
    model: str = Field(min_length=1, max_length=256, description="the model alias to probe")
    prompts: int = Field(default=25, ge=4, le=200)
    samples: int = Field(default=10, ge=2, le=50, description="samples per prompt")
    max_tokens: int = Field(default=24, ge=1, le=512)
    temperature: float = Field(default=1.0, ge=0, le=2)
    logprobs: bool = Field(default=True, description="ask for logprobs (used when returned)")
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    concurrency: int = Field(default=4, ge=1, le=64)
    seed: int = Field(default=0, description="which canary items are generated")


Job = Annotated[DriftJob | FingerprintsJob | CanaryJob, Field(discriminator="kind")]


class MonitorsConfig(_Strict):
    reports_dir: str = Field(
        default="./.tollhouse/reports", description="where Evidently HTML reports are written"
    )
    proxy_url: Url = Field(
        default="http://127.0.0.1:8080/v1", description="the proxy's /v1 URL, for canaries"
    )
    canary_key_env: EnvName = Field(
        default="TOLLHOUSE_CANARY_KEY",
        description="the variable holding the API key of the canary app",
    )
    alerts: AlertsConfig = AlertsConfig()
    embeddings: EmbeddingsConfig = EmbeddingsConfig()
    jobs: list[Job] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_jobs(self) -> MonitorsConfig:
        names = [j.name for j in self.jobs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"jobs: duplicate names {dupes}")
        return self

    def job(self, name: str) -> DriftJob | FingerprintsJob | CanaryJob | None:
        return next((j for j in self.jobs if j.name == name), None)
