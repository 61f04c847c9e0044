"""Content checks that need no model: secrets and prompt-injection phrasing.

Each check is a small object with one method, ``find(text) -> list[str]``, returning
the names of what it found (never the matched text, which may itself be a secret).
These are deliberately basic, high-precision patterns: a first line, not a classifier.

They run on every prompt, so each pattern carries needles: lower-case ASCII strings of
which any match must contain at least one (ignoring case). An ASCII text that contains
none of a pattern's needles cannot match it, and the regular expression is not run; a
substring test costs a fraction of a regex scan, and ordinary prose contains few
needles. Other texts always run every pattern: under ``re.IGNORECASE`` some non-ASCII
letters match ASCII ones (dotless i, U+0131, matches ``i``), which a substring test would miss.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PatternCheck:
    name: str
    patterns: tuple[tuple[str, re.Pattern[str], tuple[str, ...]], ...]

    def find(self, text: str) -> list[str]:
        if not text.isascii():
            return [label for label, pattern, _ in self.patterns if pattern.search(text)]
        lowered = text.lower()
        return [
            label
            for label, pattern, needles in self.patterns
            if any(n in lowered for n in needles) and pattern.search(text)
        ]


def _c(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags)


SECRETS = PatternCheck(
    "secrets",
    (
        (
            "private_key",
            _c(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
            ("private key",),
        ),
        ("openai_key", _c(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"), ("sk-",)),
        ("anthropic_key", _c(r"\bsk-ant-[A-Za-z0-9_-]{20,}"), ("sk-ant-",)),
        ("aws_access_key", _c(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), ("akia", "asia")),
        (
            "github_token",
            _c(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})"),
            ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        ),
        ("slack_token", _c(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), ("xox",)),
        ("google_api_key", _c(r"\bAIza[0-9A-Za-z_-]{35}\b"), ("aiza",)),
        ("stripe_key", _c(r"\b[rs]k_live_[0-9A-Za-z]{20,}"), ("k_live_",)),
        ("jwt", _c(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), ("eyj",)),
        (
            "connection_string",
            _c(
                r"\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|redis|rediss|amqps?|"
                r"mssql|sqlserver|oracle)(?:\+\w+)?://[^\s:/@]+:[^\s@/]+@[^\s/]+",
                re.IGNORECASE,
            ),
            ("://",),
        ),
        (
            "connection_string",
            _c(r"\b(?:Password|Pwd)\s*=\s*[^;\s]+;.*\b(?:Server|Data Source|Host)\s*=", re.I),
            ("password", "pwd"),
        ),
        (
            "credential_assignment",
            _c(
                r"\b(?:api[_-]?key|secret[_-]?key|access[_-]?token|client[_-]?secret|password)"
                r"\s*[:=]\s*['\"]?[A-Za-z0-9_\-+/=]{16,}",
                re.IGNORECASE,
            ),
            ("key", "token", "secret", "password"),
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
            ("ignore", "disregard", "forget", "override"),
        ),
        (
            "reveal_system_prompt",
            _c(
                r"\b(?:reveal|print|show|repeat|output|leak)\s+(?:me\s+)?(?:your|the)\s+"
                r"(?:system\s+prompt|hidden\s+instructions|initial\s+instructions)",
                re.IGNORECASE,
            ),
            ("instructions", "prompt"),
        ),
        (
            "role_override",
            _c(
                r"\byou\s+are\s+now\s+(?:in\s+)?(?:developer\s+mode|DAN\b|jailbroken|"
                r"an?\s+unrestricted)",
                re.IGNORECASE,
            ),
            ("you",),
        ),
        ("fake_system_turn", _c(r"(?m)^\s*(?:###\s*)?(?:system|SYSTEM)\s*:\s*\S"), ("system",)),
    ),
)
