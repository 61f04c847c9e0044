"""Content checks that need no model: secrets and prompt-injection phrasing.

Each check is a small object with one method, ``find(text) -> list[str]``, returning
the names of what it found (never the matched text, which may itself be a secret).
These are deliberately basic, high-precision patterns: a first line, not a classifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PatternCheck:
    name: str
    patterns: tuple[tuple[str, re.Pattern[str]], ...]

    def find(self, text: str) -> list[str]:
        return [label for label, pattern in self.patterns if pattern.search(text)]


def _c(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags)


SECRETS = PatternCheck(
    "secrets",
    (
        ("private_key", _c(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
        ("openai_key", _c(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}")),
        ("anthropic_key", _c(r"\bsk-ant-[A-Za-z0-9_-]{20,}")),
        ("aws_access_key", _c(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
        ("github_token", _c(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})")),
        ("slack_token", _c(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
        ("google_api_key", _c(r"\bAIza[0-9A-Za-z_-]{35}\b")),
        ("stripe_key", _c(r"\b[rs]k_live_[0-9A-Za-z]{20,}")),
        ("jwt", _c(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
        (
            "connection_string",
            _c(
                r"\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|redis|rediss|amqps?|"
                r"mssql|sqlserver|oracle)(?:\+\w+)?://[^\s:/@]+:[^\s@/]+@[^\s/]+",
                re.IGNORECASE,
            ),
        ),
        (
            "connection_string",
            _c(r"\b(?:Password|Pwd)\s*=\s*[^;\s]+;.*\b(?:Server|Data Source|Host)\s*=", re.I),
        ),
        (
            "credential_assignment",
            _c(
                r"\b(?:api[_-]?key|secret[_-]?key|access[_-]?token|client[_-]?secret|password)"
                r"\s*[:=]\s*['\"]?[A-Za-z0-9_\-+/=]{16,}",
                re.IGNORECASE,
            ),
        ),
    ),
)

PROMPT_INJECTION = PatternCheck(
    "prompt_injection",
    (
        (
            "ignore_instructions",
            _c(
                r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+|the\s+|your\s+)*"
                r"(?:previous|prior|above|earlier|preceding|system)\s+"
                r"(?:instructions|prompts?|rules|messages|directions)",
                re.IGNORECASE,
            ),
        ),
        (
            "reveal_system_prompt",
            _c(
                r"\b(?:reveal|print|show|repeat|output|leak)\s+(?:me\s+)?(?:your|the)\s+"
                r"(?:system\s+prompt|hidden\s+instructions|initial\s+instructions)",
                re.IGNORECASE,
            ),
        ),
        (
            "role_override",
            _c(
                r"\byou\s+are\s+now\s+(?:in\s+)?(?:developer\s+mode|DAN\b|jailbroken|"
                r"an?\s+unrestricted)",
                re.IGNORECASE,
            ),
        ),
        ("fake_system_turn", _c(r"(?m)^\s*(?:###\s*)?(?:system|SYSTEM)\s*:\s*\S")),
    ),
)
