"""Evaluating one policy version against one request.

Two steps, because PII analysis is expensive and runs off the event loop in between:

1. `PolicyEngine.check` — rules that need no analysis: which model the caller may use,
   prompt size, ``max_tokens``, blocked keywords and patterns, secrets, injection.
2. `PolicyEngine.decide` — with the findings: routing rules, which destinations the
   data may reach, and what each entity becomes on the way to each destination.

Both return immutable results; nothing here does I/O.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from governance.errors import (
    PermissionDeniedError,
    PolicyUnavailableError,
    PolicyViolationError,
    TollhouseError,
)
from governance.pii.findings import CustomRecognizers, Finding
from governance.pii.redact import non_overlapping
from governance.policy.checks import PROMPT_INJECTION, SECRETS
from governance.policy.decision import Decision, RequestFacts
from governance.policy.redaction import acted_on
from governance.policy.schema import DESTINATIONS, Destination, PiiAction, Policy, Rules

_MAX_CACHED_CALLERS = 4096


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A caller's rules with their regular expressions compiled once."""

    rules: Rules
    overrides: tuple[str, ...]
    keywords: re.Pattern[str] | None
    patterns: tuple[re.Pattern[str], ...]


@dataclass(slots=True)
class Checked:
    """The outcome of step 1, carried into step 2."""

    facts: RequestFacts
    compiled: _Compiled
    fired: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    error: TollhouseError | None = None
    max_tokens: int | None = None

    @property
    def rules(self) -> Rules:
        return self.compiled.rules


class PolicyEngine:
    """One published policy version, ready to evaluate requests."""

    def __init__(
        self,
        policy: Policy,
        version: int,
        destinations_of: Mapping[str, frozenset[Destination]],
        recognizers: CustomRecognizers | None = None,
    ) -> None:
        self.policy = policy
        self.name = policy.name
        self.version = version
        self.recognizers = recognizers
        self._destinations_of = destinations_of
        self._callers: dict[tuple[str, str | None], _Compiled] = {}
        unknown = sorted(policy.model_aliases() - set(destinations_of))
        if unknown:
            raise PolicyUnavailableError(
                f"Policy '{policy.name}' v{version} names model aliases this deployment "
                f"does not define: {', '.join(unknown)}."
            )

    # -- step 1 ----------------------------------------------------------------------
    def check(self, facts: RequestFacts) -> Checked:
        checked = Checked(facts, self._compiled(facts.app, facts.team))
        rules = checked.rules
        try:
            self._check_model(facts, rules, checked)
            self._check_size(facts, rules, checked)
            self._check_content(facts, checked)
        except TollhouseError as error:
            checked.error = error
        return checked

    def needs_analysis(self, checked: Checked) -> bool:
        rules = checked.rules
        return checked.error is None and (
            rules.pii.active or bool(rules.routes) or rules.audit.content == "redacted"
        )

    def _check_model(self, facts: RequestFacts, rules: Rules, checked: Checked) -> None:
        if rules.models is not None and facts.model not in rules.models:
            checked.fired.append("models")
            raise PermissionDeniedError(
                f"Policy '{self.name}' does not allow app '{facts.app}' to use model "
                f"'{facts.model}'.",
                param="model",
                code="model_not_permitted",
            )

    def _check_size(self, facts: RequestFacts, rules: Rules, checked: Checked) -> None:
        content = rules.content
        if content.max_prompt_chars is not None:
            size = sum(len(t.text) for t in facts.texts)
            if size > content.max_prompt_chars:
                checked.fired.append("content.max_prompt_chars")
                raise PolicyViolationError(
                    f"The prompt has {size} characters; policy '{self.name}' allows at most "
                    f"{content.max_prompt_chars}.",
                    code="prompt_too_large",
                )
        cap = content.max_tokens
        if cap is None or not facts.accepts_max_tokens:
            return
        if facts.max_tokens is None:
            checked.max_tokens = cap
            checked.fired.append("content.max_tokens")
        elif facts.max_tokens > cap:
            checked.fired.append("content.max_tokens")
            raise PolicyViolationError(
                f"max_tokens {facts.max_tokens} is above the limit of {cap} set by policy "
                f"'{self.name}'.",
                param="max_tokens",
                code="max_tokens_exceeded",
            )

    def _check_content(self, facts: RequestFacts, checked: Checked) -> None:
        compiled = checked.compiled
        content = compiled.rules.content
        for slot in facts.texts:
            if compiled.keywords is not None and compiled.keywords.search(slot.text):
                checked.fired.append("content.blocked_keywords")
                raise PolicyViolationError(
                    f"The request contains a keyword blocked by policy '{self.name}'.",
                    code="content_blocked",
                )
            for index, pattern in enumerate(compiled.patterns):
                if pattern.search(slot.text):
                    checked.fired.append(f"content.blocked_patterns[{index}]")
                    raise PolicyViolationError(
                        f"The request matches pattern {index} blocked by policy '{self.name}'.",
                        code="content_blocked",
                    )
        for check, action, code in (
            (SECRETS, content.secrets, "secret_detected"),
            (PROMPT_INJECTION, content.prompt_injection, "prompt_injection"),
        ):
            if action == "off":
                continue
            # Secrets can hide anywhere; injection matters where instructions come from
            # users or tools, not in the operator's own system prompt.
            slots = [
                t for t in facts.texts if check is SECRETS or t.kind not in ("system", "assistant")
            ]
            found = sorted({name for t in slots for name in check.find(t.text)})
            if not found:
                continue
            checked.fired.append(f"content.{check.name}")
            checked.flags.extend(f"{check.name}:{name}" for name in found)
            if action == "block":
                raise PolicyViolationError(
                    f"The request was blocked by policy '{self.name}': it appears to contain "
                    f"{check.name.replace('_', ' ')} ({', '.join(found)}).",
                    code=code,
                )

    # -- step 2 ----------------------------------------------------------------------
    def decide(self, checked: Checked, findings: Sequence[Sequence[Finding]] | None) -> Decision:
        """The decision; ``findings`` is one list per text slot (None: not analysed)."""
        facts = checked.facts
        rules = checked.rules
        fired = list(checked.fired)
        if checked.error is not None:
            return self._decision(
                checked, "block", facts.model, (), fired, {}, checked.error, findings or ()
            )
        everything = [f for slot in findings or () for f in slot]
        model = facts.model
        action: str = "allow"
        for route in rules.routes:
            wanted = set(route.when_entities)
            if any(f.entity_type in wanted and f.score >= route.threshold for f in everything):
                model = route.route_to
                action = "route"
                fired.append(f"routes.{route.name}")
                break
        # Count what would be acted on: above threshold, overlaps resolved (an e-mail
        # address is not also counted as the URL inside it).
        counts = Counter(
            f.entity_type
            for slot in findings or ()
            for f in non_overlapping([f for f in slot if acted_on(rules.pii, f)])
        )
        served = self._destinations_of.get(model, frozenset())
        permitted = [d for d in DESTINATIONS if d in served and d in rules.destinations]
        if not permitted:
            fired.append("destinations")
            error: TollhouseError = PermissionDeniedError(
                f"Policy '{self.name}' lets this request's data go only to "
                f"{' or '.join(rules.destinations)} models, and model '{model}' is served "
                "elsewhere.",
                param="model",
                code="destination_not_permitted",
            )
            return self._decision(checked, "block", model, (), fired, counts, error, findings or ())
        actions: dict[Destination, dict[str, PiiAction]] = {}
        blocked: dict[Destination, list[str]] = {}
        for destination in permitted:
            per_entity = {e: rules.pii.rule(e).action(destination) for e in counts}
            refused = sorted(e for e, a in per_entity.items() if a == "block")
            if refused:
                blocked[destination] = refused
                continue
            actions[destination] = {e: a for e, a in per_entity.items() if a != "allow"}
        if blocked:
            fired.extend(f"pii.block.{d}" for d in blocked)
        allowed = tuple(d for d in permitted if d in actions)
        if not allowed:
            entities = sorted({e for refused in blocked.values() for e in refused})
            error = PolicyViolationError(
                f"The request contains {', '.join(entities)}, which policy '{self.name}' does "
                f"not allow to be sent to {' or '.join(permitted)} models.",
                code="pii_blocked",
            )
            return self._decision(checked, "block", model, (), fired, counts, error, findings or ())
        if any(actions.values()):
            fired.append("pii.redact")
        return self._decision(
            checked, action, model, allowed, fired, counts, None, findings or (), actions
        )

    def _decision(
        self,
        checked: Checked,
        action: str,
        model: str,
        destinations: tuple[Destination, ...],
        fired: list[str],
        counts: Mapping[str, int],
        error: TollhouseError | None,
        findings: Sequence[Sequence[Finding]] = (),
        actions: Mapping[Destination, Mapping[str, PiiAction]] | None = None,
    ) -> Decision:
        return Decision(
            policy_name=self.name,
            policy_version=self.version,
            action="block" if error is not None else ("route" if action == "route" else "allow"),
            model=model,
            destinations=destinations,
            rules=tuple(fired),
            overrides=checked.compiled.overrides,
            pii_counts=dict(sorted(counts.items())),
            flags=tuple(checked.flags),
            rules_in_force=checked.rules,
            error=error,
            max_tokens=checked.max_tokens,
            texts=checked.facts.texts if findings else (),
            findings=findings,
            pii_actions=actions or {},
        )

    # -- per-caller rules ------------------------------------------------------------
    def _compiled(self, app: str, team: str | None) -> _Compiled:
        key = (app, team)
        compiled = self._callers.get(key)
        if compiled is None:
            rules, overrides = self.policy.rules_for(app, team)
            content = rules.content
            keywords = None
            if content.blocked_keywords:
                words = "|".join(re.escape(k) for k in content.blocked_keywords)
                keywords = re.compile(rf"(?<!\w)(?:{words})(?!\w)", re.IGNORECASE)
            compiled = _Compiled(
                rules,
                tuple(overrides),
                keywords,
                tuple(re.compile(p) for p in content.blocked_patterns),
            )
            if len(self._callers) >= _MAX_CACHED_CALLERS:
                self._callers.clear()
            self._callers[key] = compiled
        return compiled
