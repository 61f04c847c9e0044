"""Tollhouse configuration: one YAML file, validated, with environment overrides."""

from governance.config.loader import ENV_CONFIG_PATH, load_settings, resolve_config_path
from governance.config.schema import (
    AuditConfig,
    DeploymentConfig,
    ModelConfig,
    RetryConfig,
    ServerConfig,
    Settings,
    SpendConfig,
    UpstreamConfig,
)

__all__ = [
    "ENV_CONFIG_PATH",
    "AuditConfig",
    "DeploymentConfig",
    "ModelConfig",
    "RetryConfig",
    "ServerConfig",
    "Settings",
    "SpendConfig",
    "UpstreamConfig",
    "load_settings",
    "resolve_config_path",
]
