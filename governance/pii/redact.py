"""Replacing detected PII in text: masks and reversible pseudonyms.

``mask`` replaces a value with its entity type (``<EMAIL_ADDRESS>``) and cannot be
undone. ``pseudonymize`` replaces it with a numbered placeholder (``<PERSON_1>``) that
the `Pseudonyms` table of the request maps back; the same value gets the same
placeholder everywhere in one request. The table lives in memory for one request only
and is never stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from governance.pii.findings import Finding

# What a pseudonym placeholder looks like; the restorer relies on this grammar.
PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*)_(\d+)>")


@dataclass(slots=True)
class Pseudonyms:
    """One request's value <-> placeholder table."""

    _by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    _by_placeholder: dict[str, str] = field(default_factory=dict)
    _counters: dict[str, int] = field(default_factory=dict)

    def placeholder(self, entity_type: str, value: str) -> str:
        key = (entity_type, value)
        existing = self._by_value.get(key)
        if existing is not None:
            return existing
        number = self._counters.get(entity_type, 0) + 1
        self._counters[entity_type] = number
        placeholder = f"<{entity_type}_{number}>"
        self._by_value[key] = placeholder
        self._by_placeholder[placeholder] = value
        return placeholder

    def original(self, placeholder: str) -> str | None:
        return self._by_placeholder.get(placeholder)

    @property
    def longest(self) -> int:
        return max((len(p) for p in self._by_placeholder), default=0)

    def __bool__(self) -> bool:
        return bool(self._by_placeholder)


def mask_token(entity_type: str) -> str:
    return f"<{entity_type}>"


def non_overlapping(findings: Iterable[Finding]) -> list[Finding]:
    """Findings sorted by position; of overlapping ones the longer (then higher score) wins."""
    ranked = sorted(findings, key=lambda f: (-(f.end - f.start), -f.score, f.start))
    taken: list[Finding] = []
    for finding in ranked:
        if all(finding.end <= t.start or finding.start >= t.end for t in taken):
            taken.append(finding)
    return sorted(taken, key=lambda f: f.start)


Replacement = Callable[[Finding, str], str]
"""Given a finding and the text it covers, what to put in its place."""


def replace(text: str, findings: Sequence[Finding], replacement: Replacement) -> str:
    """``text`` with each finding replaced as ``replacement`` says.

    Callers pass only the findings they act on: overlaps are resolved among those, so a
    finding that is left alone can never shield one that must be replaced.
    """
    if not findings:
        return text
    out: list[str] = []
    position = 0
    for finding in non_overlapping(findings):
        new = replacement(finding, text[finding.start : finding.end])
        out.append(text[position : finding.start])
        out.append(new)
        position = finding.end
    out.append(text[position:])
    return "".join(out)


def mask_all(text: str, findings: Sequence[Finding]) -> str:
    return replace(text, findings, lambda f, _value: mask_token(f.entity_type))


def restore(text: str, pseudonyms: Pseudonyms, escape: Callable[[str], str] | None = None) -> str:
    """``text`` with every known placeholder replaced by its original (escaped if asked)."""
    if not pseudonyms or "<" not in text:
        return text

    def original(match: re.Match[str]) -> str:
        value = pseudonyms.original(match.group(0))
        if value is None:
            return match.group(0)
        return escape(value) if escape else value

    return PLACEHOLDER.sub(original, text)
