"""Load ``tollhouse.yaml``: the only module that reads the environment.

Environment overrides: ``TOLLHOUSE_DATABASE_URL`` replaces ``database_url``; each
upstream's ``api_key_env`` names the variable holding its key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml
from pydantic import SecretStr, ValidationError

from governance.config.schema import Settings
from governance.errors import ConfigError

ENV_CONFIG_PATH = "TOLLHOUSE_CONFIG"
ENV_DATABASE_URL = "TOLLHOUSE_DATABASE_URL"
DEFAULT_CONFIG_PATH = "tollhouse.yaml"


def resolve_config_path(explicit: str | None, environ: Mapping[str, str] | None = None) -> Path:
    """``--config`` if given, else ``$TOLLHOUSE_CONFIG``, else ``./tollhouse.yaml``."""
    env = os.environ if environ is None else environ
    return Path(explicit or env.get(ENV_CONFIG_PATH) or DEFAULT_CONFIG_PATH)


def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, validate and complete the settings, or raise `ConfigError` naming file and field."""
    env = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the configuration file ({exc.strerror}); "
            f"pass --config FILE or set {ENV_CONFIG_PATH}"
        ) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    return settings_from_mapping(raw, env, source=str(path))


def settings_from_mapping(
    raw: dict[str, Any], environ: Mapping[str, str], *, source: str = "<config>"
) -> Settings:
    """Validate an already-parsed document and apply the environment overrides."""
    if ENV_DATABASE_URL in environ:
        raw = {**raw, "database_url": environ[ENV_DATABASE_URL]}
    raw = _with_otel_environment(raw, environ, source)
    if "upstream_api_keys" in raw or "monitor_secrets" in raw:
        raise ConfigError(
            f"{source}: secrets never go in the file; name environment variables (api_key_env, "
            "url_env, canary_key_env) instead"
        )
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(source, exc)) from exc
    keys: dict[str, SecretStr] = {}
    for upstream in settings.upstreams:
        if upstream.api_key_env is None:
            continue
        value = environ.get(upstream.api_key_env)
        if not value:
            raise ConfigError(
                f"{source}: upstreams[{upstream.name}].api_key_env: environment variable "
                f"{upstream.api_key_env} is not set; export it or remove api_key_env"
            )
        keys[upstream.name] = SecretStr(value)
    monitors = settings.monitors
    wanted = [monitors.canary_key_env, monitors.embeddings.api_key_env]
    wanted += [sink.url_env for sink in monitors.alerts.sinks]
    secrets = {name: SecretStr(environ[name]) for name in wanted if name and environ.get(name)}
    return settings.model_copy(update={"upstream_api_keys": keys, "monitor_secrets": secrets})


_TRUE = frozenset({"true", "1", "yes", "on"})


def _with_otel_environment(
    raw: dict[str, Any], environ: Mapping[str, str], source: str
) -> dict[str, Any]:
    """Apply the standard OpenTelemetry variables over the file's ``telemetry`` section.

    ``OTEL_SDK_DISABLED=true`` switches every signal off. An OTLP endpoint in the
    environment, with no exporter chosen in the environment or the file, means OTLP (the
    SDK's own default exporter).
    """
    section = raw.get("telemetry") or {}
    if not isinstance(section, dict):
        return raw  # validation names the problem
    telemetry = dict(section)

    def env(name: str) -> str | None:
        value = environ.get(name, "").strip()
        return value or None

    if (env("OTEL_SDK_DISABLED") or "").lower() in _TRUE:
        telemetry.update(traces="none", metrics="none", prometheus=False)
        return {**raw, "telemetry": telemetry}
    if env("OTEL_SERVICE_NAME"):
        telemetry["service_name"] = env("OTEL_SERVICE_NAME")
    if env("OTEL_EXPORTER_OTLP_ENDPOINT"):
        telemetry["otlp_endpoint"] = env("OTEL_EXPORTER_OTLP_ENDPOINT")
    for signal in ("traces", "metrics"):
        endpoint = env(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
        if endpoint:
            telemetry[f"{signal}_endpoint"] = endpoint
        chosen = env(f"OTEL_{signal.upper()}_EXPORTER")
        unset = telemetry.get(signal, "none") == "none"
        if chosen is None and unset and (endpoint or env("OTEL_EXPORTER_OTLP_ENDPOINT")):
            chosen = "otlp"
        if chosen is not None:
            names = {n.strip().lower() for n in chosen.split(",") if n.strip()}
            if signal == "metrics" and "prometheus" in names:
                telemetry["prometheus"] = True
                names.discard("prometheus")
            unknown = names - {"otlp", "console", "none"}
            if unknown or len(names) > 1:
                raise ConfigError(
                    f"{source}: OTEL_{signal.upper()}_EXPORTER={chosen!r}: Tollhouse exports "
                    "through one of otlp, console or none"
                    + (" (and prometheus for metrics)" if signal == "metrics" else "")
                )
            telemetry[signal] = names.pop() if names else "none"
    protocol = env("OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol:
        telemetry["protocol"] = protocol
    interval = env("OTEL_METRIC_EXPORT_INTERVAL")
    if interval:
        telemetry["metric_export_interval_s"] = _milliseconds(
            source, "OTEL_METRIC_EXPORT_INTERVAL", interval
        )
    headers = env("OTEL_EXPORTER_OTLP_HEADERS")
    if headers:
        telemetry["headers"] = {**(telemetry.get("headers") or {}), **_pairs(headers)}
    resource = env("OTEL_RESOURCE_ATTRIBUTES")
    if resource:
        attributes = {**(telemetry.get("resource_attributes") or {}), **_pairs(resource)}
        telemetry["resource_attributes"] = attributes
    timeout = env("OTEL_EXPORTER_OTLP_TIMEOUT")
    if timeout:
        telemetry["timeout_s"] = _milliseconds(source, "OTEL_EXPORTER_OTLP_TIMEOUT", timeout)
    for variable, key in (
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "compression"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "certificate"),
        ("OTEL_TRACES_SAMPLER", "sampler"),
    ):
        value = env(variable)
        if value:
            telemetry[key] = value
    ratio = env("OTEL_TRACES_SAMPLER_ARG")
    if ratio:
        try:
            telemetry["sampler_ratio"] = float(ratio)
        except ValueError as exc:
            raise ConfigError(
                f"{source}: OTEL_TRACES_SAMPLER_ARG={ratio!r}: a number from 0 to 1 expected"
            ) from exc
    capture = env("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
    if capture:
        telemetry["capture_content"] = capture.lower() in _TRUE
    return {**raw, "telemetry": telemetry}


def _milliseconds(source: str, variable: str, value: str) -> float:
    """Seconds from a variable the OpenTelemetry specification gives in milliseconds."""
    try:
        return float(value) / 1000
    except ValueError as exc:
        raise ConfigError(f"{source}: {variable}={value!r}: milliseconds expected") from exc


def _pairs(value: str) -> dict[str, str]:
    """``name=value`` pairs, comma-separated, URL-encoded (``OTEL_EXPORTER_OTLP_HEADERS``,
    ``OTEL_RESOURCE_ATTRIBUTES``)."""
    headers = {}
    for pair in value.split(","):
        name, sep, raw = pair.partition("=")
        if sep and name.strip():
            headers[unquote(name.strip())] = unquote(raw.strip())
    return headers


def _describe(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid configuration ({exc.error_count()} problem(s)):"]
    for error in exc.errors(include_url=False):
        field = ".".join(
            f"[{part}]" if isinstance(part, int) else str(part) for part in error["loc"]
        ).replace(".[", "[")
        where = field or "(top level)"
        lines.append(f"  {where}: {error['msg']}")
    return "\n".join(lines)
