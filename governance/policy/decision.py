"""What evaluating a policy yields: the decision and its trace."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from governance.errors import TollhouseError
from governance.pii.findings import Finding
from governance.policy.schema import Destination, PiiAction, ResponseRules, Rules

Action = Literal["allow", "route", "block"]


@dataclass(frozen=True, slots=True)
class TextSlot:
    """One place text travels in a request: ``path`` into the JSON body, and the text."""

    path: tuple[str | int, ...]
    text: str
    kind: str  # "system", "user", "assistant", "tool", "arguments", "prompt", "input"


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What policy evaluation needs to know about a request."""

    app: str
    team: str | None
    model: str
    max_tokens: int | None
    texts: Sequence[TextSlot]
    accepts_max_tokens: bool = True


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one request under one policy version.

    ``findings`` (one list per text slot) stay in memory: the trace carries entity
    types and counts only, never values.
    """

    policy_name: str
    policy_version: int
    action: Action
    model: str
    destinations: tuple[Destination, ...]
    rules: tuple[str, ...]
    overrides: tuple[str, ...]
    pii_counts: Mapping[str, int]
    flags: tuple[str, ...]
    rules_in_force: Rules
    error: TollhouseError | None = None
    max_tokens: int | None = None
    texts: Sequence[TextSlot] = field(default_factory=tuple)
    findings: Sequence[Sequence[Finding]] = field(default_factory=tuple)
    pii_actions: Mapping[Destination, Mapping[str, PiiAction]] = field(default_factory=dict)

    @property
    def audit_content(self) -> str:
        return self.rules_in_force.audit.content

    @property
    def response(self) -> ResponseRules:
        return self.rules_in_force.response

    def trace(self) -> dict[str, Any]:
        """The JSON stored in the audit record: rules fired, entity counts, outcome."""
        trace: dict[str, Any] = {
            "action": self.action,
            "model": self.model,
            "destinations": list(self.destinations),
            "rules": list(self.rules),
            "overrides": list(self.overrides),
            "pii": dict(self.pii_counts),
        }
        if self.flags:
            trace["flags"] = list(self.flags)
        if self.pii_actions:
            trace["redaction"] = {
                dest: dict(sorted(actions.items())) for dest, actions in self.pii_actions.items()
            }
        if self.error is not None:
            trace["error"] = self.error.code or self.error.type
        return trace

    def shadow_trace(self) -> dict[str, Any]:
        return {"version": self.policy_version, **self.trace()}
