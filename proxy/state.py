"""Everything built once at start-up and shared by requests."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from governance.audit import AuditWriter
from governance.config.schema import Settings
from proxy.auth import Authenticator
from proxy.pipeline import Pipeline
from proxy.policies import PolicyCache
from proxy.telemetry import Telemetry
from proxy.upstream.adapter import UpstreamAdapter


@dataclass(frozen=True, slots=True)
class AppState:
    settings: Settings
    engine: Engine
    writer: AuditWriter
    authenticator: Authenticator
    pipeline: Pipeline
    adapters: dict[str, UpstreamAdapter]
    policies: PolicyCache
    telemetry: Telemetry
