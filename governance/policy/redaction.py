"""Turning a decision into redacted text: per destination, and for the audit copy."""

from __future__ import annotations

from collections.abc import Callable

from governance.pii.findings import Finding
from governance.pii.redact import Pseudonyms, mask_token, replace
from governance.policy.decision import Decision
from governance.policy.schema import Destination, PiiRules

Path = tuple[str | int, ...]


def acted_on(pii: PiiRules, finding: Finding) -> bool:
    """A finding counts when it reaches its entity's threshold."""
    return finding.score >= pii.rule(finding.entity_type).threshold


def redacted_texts(
    decision: Decision, destination: Destination, pseudonyms: Pseudonyms
) -> dict[Path, str]:
    """New text for each slot that changes on its way to ``destination``."""
    actions = decision.pii_actions.get(destination, {})
    if not actions:
        return {}
    pii = decision.rules_in_force.pii

    def replacement(finding: Finding, value: str) -> str:
        if actions[finding.entity_type] == "pseudonymize":
            return pseudonyms.placeholder(finding.entity_type, value)
        return mask_token(finding.entity_type)  # "mask" ("block" never gets here)

    return _changed(decision, lambda f: f.entity_type in actions and acted_on(pii, f), replacement)


def audit_texts(decision: Decision) -> dict[Path, str]:
    """Every detected entity masked: what ``audit.content: redacted`` stores."""
    pii = decision.rules_in_force.pii
    return _changed(
        decision, lambda f: acted_on(pii, f), lambda f, _value: mask_token(f.entity_type)
    )


def _changed(
    decision: Decision,
    keep: Callable[[Finding], bool],
    replacement: Callable[[Finding, str], str],
) -> dict[Path, str]:
    out: dict[Path, str] = {}
    for slot, findings in zip(decision.texts, decision.findings, strict=True):
        kept = [f for f in findings if keep(f)]
        if kept:
            text = replace(slot.text, kept, replacement)
            if text != slot.text:
                out[slot.path] = text
    return out
