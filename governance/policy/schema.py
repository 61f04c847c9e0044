"""The shape of a policy document (YAML), validated by pydantic.

A policy has ``defaults`` and ordered ``overrides`` selected by app and/or team. An
override replaces whole sections of the defaults (``models``, ``destinations``, ``pii``,
``routes``, ``content``, ``response``, ``audit``, ``budgets``, ``rate_limits``); later
matching overrides win. ``recognizers`` add custom PII detectors shared by all sections.
The published JSON Schema (``tollhouse policy schema``, docs/policy.schema.json) is
generated from these models.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Destination = Literal["internal", "external"]
DESTINATIONS: tuple[Destination, ...] = ("internal", "external")
PiiAction = Literal["allow", "mask", "pseudonymize", "block"]
CheckAction = Literal["off", "flag", "block"]
AuditContent = Literal["none", "redacted", "full"]
Name = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$")
]
EntityType = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")]
Score = Annotated[float, Field(ge=0.0, le=1.0)]
Money = Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=6)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
    return pattern


Regex = Annotated[str, Field(min_length=1, max_length=1000)]


class EntityRule(_Strict):
    """What to do with one entity type, per destination, above a score threshold."""

    internal: PiiAction = "allow"
    external: PiiAction = "mask"
    threshold: Score = Field(default=0.5, description="findings scoring below are ignored")

    def action(self, destination: Destination) -> PiiAction:
        return self.internal if destination == "internal" else self.external


class PiiRules(_Strict):
    """PII handling. Entities not listed in ``entities`` get ``default``."""

    default: EntityRule = EntityRule(internal="allow", external="allow")
    entities: dict[EntityType, EntityRule] = Field(default_factory=dict)

    @field_validator("entities", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # ``PERSON: mask`` is short for the same action on both destinations.
        if isinstance(value, dict):
            return {
                k: {"internal": v, "external": v} if isinstance(v, str) else v
                for k, v in value.items()
            }
        return value

    def rule(self, entity: str) -> EntityRule:
        return self.entities.get(entity, self.default)

    @property
    def active(self) -> bool:
        """True when any entity is handled other than ``allow`` somewhere."""
        rules = [self.default, *self.entities.values()]
        return any(r.internal != "allow" or r.external != "allow" for r in rules)


class RouteRule(_Strict):
    """Send a request to another model alias when it contains certain entities."""

    name: Name
    when_entities: Annotated[list[EntityType], Field(min_length=1)]
    route_to: Name
    threshold: Score = 0.5


class ContentRules(_Strict):
    blocked_keywords: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="case-insensitive whole words or phrases"
    )
    blocked_patterns: list[Regex] = Field(default_factory=list)
    max_prompt_chars: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(
        default=None, ge=1, description="larger requests are refused; absent ones get this"
    )
    secrets: CheckAction = Field(
        default="block", description="API keys, private keys, connection strings"
    )
    prompt_injection: CheckAction = "flag"

    @field_validator("blocked_patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        return [_compiles(p) for p in value]


class ResponseRules(_Strict):
    """Scan answers for PII and mask it before the client sees it."""

    mask_entities: list[EntityType] = Field(default_factory=list)
    threshold: Score = 0.5


class AuditRules(_Strict):
    content: AuditContent = "none"


class Budget(_Strict):
    """A spending limit per app, team, key or end user, per UTC day or month.

    ``cost`` is in the deployment's currency (``spend.currency``); ``tokens`` counts input
    plus output tokens. At the limit, requests get 429 until the period resets; from
    ``alert_at`` (a fraction of the limit) on, an alert is raised and answers carry a
    warning header. A budget of scope ``team`` or ``end_user`` does not apply to requests
    without a team or a ``user``.
    """

    name: Name
    scope: Literal["app", "team", "key", "end_user"]
    period: Literal["daily", "monthly"]
    cost: Money | None = None
    tokens: int | None = Field(default=None, gt=0)
    alert_at: Score = 0.8

    @model_validator(mode="after")
    def _has_limit(self) -> Budget:
        if self.cost is None and self.tokens is None:
            raise ValueError(f"budget {self.name!r}: give cost, tokens or both")
        return self


class RateLimit(_Strict):
    """Requests and/or tokens (input plus output) per UTC minute, per key or per app."""

    scope: Literal["key", "app"]
    requests_per_minute: int | None = Field(default=None, gt=0)
    tokens_per_minute: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _has_limit(self) -> RateLimit:
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ValueError("a rate limit needs requests_per_minute, tokens_per_minute or both")
        return self


def _unique_budget_names(budgets: list[Budget] | None) -> list[Budget] | None:
    names = [b.name for b in budgets or ()]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate budget names {dupes}")
    return budgets


class Rules(_Strict):
    """One complete set of rules; ``defaults`` and each override have this shape."""

    models: list[Name] | None = Field(default=None, description="aliases allowed; null = all")
    destinations: list[Destination] = Field(default_factory=lambda: list(DESTINATIONS))
    pii: PiiRules = PiiRules()
    routes: list[RouteRule] = Field(default_factory=list)
    content: ContentRules = ContentRules()
    response: ResponseRules = ResponseRules()
    audit: AuditRules = AuditRules()
    budgets: list[Budget] = Field(default_factory=list)
    rate_limits: list[RateLimit] = Field(default_factory=list)

    _budget_names = field_validator("budgets")(_unique_budget_names)


class PartialRules(_Strict):
    """An override: only the sections it names (not null) replace the defaults'."""

    models: list[Name] | None = None
    destinations: list[Destination] | None = None
    pii: PiiRules | None = None
    routes: list[RouteRule] | None = None
    content: ContentRules | None = None
    response: ResponseRules | None = None
    audit: AuditRules | None = None
    budgets: list[Budget] | None = None
    rate_limits: list[RateLimit] | None = None

    _budget_names = field_validator("budgets")(_unique_budget_names)


class Selector(_Strict):
    """Matches when the key's app is in ``apps`` and its team in ``teams`` (absent = any)."""

    apps: list[Name] | None = None
    teams: list[Name] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Selector:
        if self.apps is None and self.teams is None:
            raise ValueError("a selector needs 'apps', 'teams' or both")
        return self

    def matches(self, app: str, team: str | None) -> bool:
        if self.apps is not None and app not in self.apps:
            return False
        return self.teams is None or (team is not None and team in self.teams)


class Override(_Strict):
    name: Name
    match: Selector
    rules: PartialRules


class PatternSpec(_Strict):
    regex: Regex
    score: Score = 0.6

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        return _compiles(value)


class RecognizerSpec(_Strict):
    """A custom detector: regular expressions (boosted by context words) or a deny-list."""

    name: Name
    entity: EntityType
    patterns: list[PatternSpec] = Field(default_factory=list)
    deny_list: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    context: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something_to_find(self) -> RecognizerSpec:
        if not self.patterns and not self.deny_list:
            raise ValueError(f"recognizer {self.name!r} needs 'patterns' or 'deny_list'")
        return self


class Policy(_Strict):
    """A policy document, as published. ``name`` identifies it across versions."""

    name: Name
    description: str | None = None
    defaults: Rules = Rules()
    overrides: list[Override] = Field(default_factory=list)
    recognizers: list[RecognizerSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Policy:
        for section, names in (
            ("overrides", [o.name for o in self.overrides]),
            ("recognizers", [r.name for r in self.recognizers]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{section}: duplicate names {dupes}")
        return self

    def rules_for(self, app: str, team: str | None) -> tuple[Rules, list[str]]:
        """The effective rules of a caller and the names of the overrides applied."""
        merged: dict[str, Any] = dict(self.defaults)
        applied: list[str] = []
        for override in self.overrides:
            if override.match.matches(app, team):
                merged.update(override.rules.model_dump(exclude_none=True))
                applied.append(override.name)
        if not applied:
            return self.defaults, applied
        return Rules.model_validate(
            {k: (v.model_dump() if isinstance(v, BaseModel) else v) for k, v in merged.items()}
        ), applied

    def model_aliases(self) -> set[str]:
        """Every model alias the policy names (checked against the config)."""
        names: set[str] = set()
        sections: list[Rules | PartialRules] = [self.defaults, *(o.rules for o in self.overrides)]
        for rules in sections:
            names.update(rules.models or [])
            names.update(r.route_to for r in rules.routes or [])
        return names
