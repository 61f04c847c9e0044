"""Configuration: a bad file stops start-up with a message naming file, field and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.config import load_settings, resolve_config_path
from governance.config.loader import settings_from_mapping
from governance.errors import ConfigError

GOOD = """
database_url: sqlite:///./x.db
upstreams:
  - name: vllm-a
    base_url: "http://10.0.0.5:8000/v1/"
    destination: internal
    api_key_env: VLLM_KEY
models:
  - name: chat-default
    deployments: [{upstream: vllm-a, model: meta-llama/Llama-3.1-8B-Instruct}]
spend:
  currency: EUR
  prices_file: prices.yaml
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tollhouse.yaml"
    path.write_text(text)
    return path


def test_valid_file_with_environment_overrides(tmp_path: Path) -> None:
    env = {"VLLM_KEY": "sk-fake", "TOLLHOUSE_DATABASE_URL": "postgresql://u@h/db"}
    settings = load_settings(write(tmp_path, GOOD), env)
    assert settings.database_url == "postgresql://u@h/db"
    assert settings.upstreams[0].base_url == "http://10.0.0.5:8000/v1"
    assert settings.upstream_api_keys["vllm-a"].get_secret_value() == "sk-fake"
    assert "sk-fake" not in repr(settings)
    assert (settings.spend.currency, settings.spend.prices_file) == ("EUR", "prices.yaml")
    assert settings.upstreams[0].probe is None
    assert (settings.routing.cooldown_after_failures, settings.routing.cooldown_s) == (3, 10.0)


def test_a_probe_takes_health_and_metrics_urls(tmp_path: Path) -> None:
    probed = GOOD.replace(
        "destination: internal",
        "destination: internal\n    probe:\n      health_url: http://10.0.0.5:8000/health\n"
        "      metrics_url: http://10.0.0.5:8000/metrics\n      interval_s: 0.5",
    )
    probe = load_settings(write(tmp_path, probed), {"VLLM_KEY": "x"}).upstreams[0].probe
    assert probe is not None
    assert probe.health_url == "http://10.0.0.5:8000/health"
    assert probe.metrics_url == "http://10.0.0.5:8000/metrics"
    assert (probe.interval_s, probe.timeout_s) == (0.5, 1.0)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("destination: internal", "destination: elsewhere"), "upstreams[0].destination"),
        (("upstream: vllm-a", "upstream: vllm-b"), "unknown upstream 'vllm-b'"),
        (("currency: EUR", "currency: euro"), "spend.currency"),
        (("database_url:", "databse_url:"), "databse_url: Extra inputs are not permitted"),
        (
            ("destination: internal", "destination: internal\n    probe: {interval_s: 5}"),
            "upstreams[0].probe: Value error, a probe needs health_url, metrics_url or both",
        ),
        (
            ("destination: internal", "destination: internal\n    probe: {health_url: vllm}"),
            "upstreams[0].probe.health_url",
        ),
        (("spend:", "routing: {cooldown_s: 0}\nspend:"), "routing.cooldown_s"),
    ],
)
def test_invalid_files_name_the_field(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {"VLLM_KEY": "x"})
    assert str(path) in caught.value.message
    assert expected in caught.value.message


def test_missing_secret_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="VLLM_KEY is not set"):
        load_settings(write(tmp_path, GOOD), {})
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "absent.yaml", {})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "models: [unclosed"), {})
    with pytest.raises(ConfigError, match="secrets never go in the file"):
        load_settings(write(tmp_path, "upstream_api_keys: {a: b}"), {})


def test_config_path_resolution() -> None:
    assert resolve_config_path("a.yaml", {"TOLLHOUSE_CONFIG": "b.yaml"}) == Path("a.yaml")
    assert resolve_config_path(None, {"TOLLHOUSE_CONFIG": "b.yaml"}) == Path("b.yaml")
    assert resolve_config_path(None, {}) == Path("tollhouse.yaml")


# -- telemetry from the standard OpenTelemetry variables --------------------------------


def test_otel_variables_override_the_telemetry_section() -> None:
    settings = settings_from_mapping(
        {"telemetry": {"traces": "console", "service_name": "from-file"}},
        {
            "OTEL_SERVICE_NAME": "from-env",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
            "OTEL_METRICS_EXPORTER": "otlp,prometheus",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_METRIC_EXPORT_INTERVAL": "15000",
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
        },
    )
    telemetry = settings.telemetry
    assert telemetry.service_name == "from-env"
    assert telemetry.traces == "console"  # the file's choice; no OTEL_TRACES_EXPORTER set
    assert telemetry.metrics == "otlp" and telemetry.prometheus
    assert telemetry.protocol == "grpc"
    assert telemetry.otlp_endpoint == "http://collector:4318"
    assert telemetry.metric_export_interval_s == 15.0
    assert telemetry.capture_content


def test_exporter_variables_fill_the_exporter_settings() -> None:
    settings = settings_from_mapping(
        {"telemetry": {"headers": {"x-from-file": "1"}}},
        {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom/traces",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://c:4318/custom/metrics",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=abc%3D%3D,x-tenant = blue",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=staging,team=ml%20ops",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
            "OTEL_EXPORTER_OTLP_CERTIFICATE": "/etc/ssl/collector-ca.pem",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
        },
    )
    telemetry = settings.telemetry
    assert telemetry.traces_endpoint == "http://c:4318/custom/traces"
    assert telemetry.metrics_endpoint == "http://c:4318/custom/metrics"
    assert telemetry.headers == {"x-from-file": "1", "x-api-key": "abc==", "x-tenant": "blue"}
    assert telemetry.resource_attributes == {
        "deployment.environment": "staging",
        "team": "ml ops",
    }
    assert telemetry.timeout_s == 2.5
    assert telemetry.compression == "gzip"
    assert telemetry.certificate == "/etc/ssl/collector-ca.pem"
    assert (telemetry.sampler, telemetry.sampler_ratio) == ("parentbased_traceidratio", 0.25)


def test_an_otlp_endpoint_alone_turns_otlp_export_on() -> None:
    settings = settings_from_mapping({}, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318"})
    assert settings.telemetry.traces == "otlp"
    assert settings.telemetry.metrics == "none"
    assert settings_from_mapping({}, {}).telemetry.traces == "none"  # off by default


def test_otel_sdk_disabled_switches_everything_off() -> None:
    settings = settings_from_mapping(
        {"telemetry": {"traces": "otlp", "metrics": "otlp", "prometheus": True}},
        {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"},
    )
    assert (settings.telemetry.traces, settings.telemetry.metrics) == ("none", "none")
    assert not settings.telemetry.prometheus


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("OTEL_TRACES_EXPORTER", "zipkin", "OTEL_TRACES_EXPORTER='zipkin'"),
        ("OTEL_METRICS_EXPORTER", "otlp,console", "OTEL_METRICS_EXPORTER"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "soon", "milliseconds expected"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "telemetry.protocol"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s", "milliseconds expected"),
        ("OTEL_TRACES_SAMPLER", "jaeger_remote", "telemetry.sampler"),
        ("OTEL_TRACES_SAMPLER_ARG", "half", "a number from 0 to 1"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5", "telemetry.sampler_ratio"),
    ],
)
def test_bad_otel_variables_are_configuration_errors(
    variable: str, value: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({}, {variable: value})
    assert fragment in str(caught.value)


def test_upstream_provider_name_defaults() -> None:
    upstreams = [
        {"name": "oai", "base_url": "https://api.openai.com/v1", "destination": "external"},
        {"name": "vllm", "base_url": "http://vllm:8000/v1", "destination": "internal"},
        {
            "name": "named",
            "base_url": "http://x/v1",
            "destination": "internal",
            "provider": "vllm",
        },
    ]
    settings = settings_from_mapping({"upstreams": upstreams}, {})
    names = [u.provider_name for u in settings.upstreams]
    assert names == ["openai", "openai_compatible", "vllm"]
