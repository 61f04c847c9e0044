"""Presidio's own recognizers, adjusted where their defaults do not suit a proxy.

- e-mail addresses are validated by a private, offline tldextract (bundled suffix
  snapshot, no disk cache), so nothing can try the network whatever the environment says;
- IBANs are validated case-insensitively ("gb42nawi0445..." is an IBAN too);
- URLs and domain names are found by shape and checked against the same suffix list,
  instead of Presidio's 670-alternative expression (slow on long prompts), and bare
  names whose suffix is also a common file extension ("setup.py") are left alone;
- card numbers that fail the Luhn check or have an unusual prefix still count next to a
  card word (a mistyped card number is still a card number);
- US driver's licence shapes count only next to a licence word (Presidio scores every
  letter-and-digits token of a text);
- spaCy entities are trimmed to one line, and DATE/TIME entities are kept only when they
  name a particular date or time (a year, a month, a weekday, digits), not "last month",
  "the weekend" or "years".
"""

from __future__ import annotations

import re

import tldextract
from presidio_analyzer import RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import (
    IbanRecognizer,
    SpacyRecognizer,
    UsLicenseRecognizer,
)

from governance.pii.recognizers_base import ContextRegexRecognizer, Rule
from governance.pii.recognizers_lexicon import split_words

# No URL to fetch, no cache directory to write: the suffix list shipped with the package.
OFFLINE_TLDS = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


class OfflineEmailRecognizer(ContextRegexRecognizer):
    """EMAIL_ADDRESS: local@domain where the domain ends in a known public suffix.

    Presidio's e-mail recognizer validates with tldextract's module-level extractor
    (which fetches the suffix list over the network unless told otherwise, and caches it
    on disk) and scans the whole text with a long expression; this one starts from each
    "@" and validates against the private, offline extractor.
    """

    _LOCAL = re.compile(
        r"(?<![\w.!#$%&'*+/=?^`{|}~-])[\w!#$%&'*+/=?^`{|}~-]+(?:\.[\w!#$%&'*+/=?^`{|}~-]+)*\Z"
    )
    _DOMAIN = re.compile(r"[^\W_](?:[\w-]*[^\W_])?(?:\.[^\W_](?:[\w-]*[^\W_])?)+")

    def __init__(self) -> None:
        super().__init__("EMAIL_ADDRESS", [], name="TollhouseEmailRecognizer")

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
    ) -> list[RecognizerResult]:
        """Every local@domain with a real public suffix, at full confidence."""
        results = []
        at = text.find("@")
        while at > 0:
            local = self._LOCAL.search(text, max(0, at - 64), at)
            domain = self._DOMAIN.match(text, at + 1)
            if local is not None and domain is not None and OFFLINE_TLDS(domain.group()).suffix:
                results.append(self.result(local.start(), domain.end(), 1.0))
            at = text.find("@", at + 1)
        return results


# Country-code domains that are also common file extensions: bare "name.ext" is a file.
_FILE_LIKE = frozenset(split_words("py rs md sh pl cc cs pm ps so mk ml sc rb ts js go gz ai tf"))
_URL_END = r"[^\s<>\"'()\[\]{}]*[^\s<>\"'()\[\]{}.,;:!?]"


class DomainRecognizer(ContextRegexRecognizer):
    """URL: web addresses with a scheme or ``www.``, and domain names with a real suffix."""

    def __init__(self) -> None:
        super().__init__(
            "URL",
            [
                Rule("url", rf"(?i)\b(?:https?|ftp)://{_URL_END}|\bwww\d{{0,3}}\.{_URL_END}", 0.6),
                Rule(
                    "domain",
                    r"(?i)(?<![\w@./:-])(?P<v>(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}"
                    rf"(?P<path>/{_URL_END})?)(?![\w@-]|\.\w)",
                    0.5,
                ),
            ],
            context=["url", "website", "site", "link", "domain", "web", "homepage"],
            boost=0.3,
            name="TollhouseDomainRecognizer",
        )

    def check(self, rule: Rule, match: re.Match[str], score: float) -> float | None:
        """Bare domains must end in a public suffix (and not look like a file name)."""
        if rule.name == "url":
            return score
        parts = OFFLINE_TLDS(match.group("v"))
        if not parts.suffix or not parts.domain:
            return None
        if not match.group("path") and not parts.subdomain and parts.suffix.lower() in _FILE_LIKE:
            return None
        return score


class CaseInsensitiveIbanRecognizer(IbanRecognizer):
    """IBAN_CODE in any letter case, checksum-validated on the upper-cased value."""

    def __init__(self) -> None:
        super().__init__(regex_flags=re.DOTALL | re.MULTILINE | re.IGNORECASE)

    def validate_result(self, pattern_text: str) -> bool:
        """The ISO 13616 checksum of the upper-cased match."""
        return bool(super().validate_result(pattern_text.upper()))


class CardNumberRecognizer(ContextRegexRecognizer):
    """CREDIT_CARD: 12 to 19 digits near a card word, whatever their checksum."""

    def __init__(self) -> None:
        super().__init__(
            "CREDIT_CARD",
            [
                Rule(
                    "digits",
                    r"(?<![\w.+-])(?P<v>\d(?:[ -]?\d){11,18})(?![\w-]|[.,]\d)",
                    0.3,
                    needs_context=True,
                )
            ],
            context=split_words("card credit debit visa mastercard amex cc discover maestro"),
            boost=0.35,
            before=5,
            after=1,
            name="TollhouseCardNumberRecognizer",
        )

    def check(self, rule: Rule, match: re.Match[str], score: float) -> float | None:
        """Separators, when there are any, must be consistent (4-4-4-4, 4 6 5...)."""
        value = match.group("v")
        groups = re.split(r"[ -]", value)
        if len(groups) > 1 and (len(groups) > 5 or min(len(g) for g in groups) < 3):
            return None
        return score


class DriverLicenseRecognizer(ContextRegexRecognizer):
    """US_DRIVER_LICENSE: Presidio's state formats, only near a licence word.

    Presidio's version matches (case-insensitively) every letter-and-digits token of a
    text at a low score; these shapes mean nothing without "driver", "license"... nearby.
    """

    def __init__(self) -> None:
        alphanumeric = UsLicenseRecognizer.PATTERNS[0].regex
        super().__init__(
            "US_DRIVER_LICENSE",
            [
                Rule("alphanumeric", alphanumeric, 0.2, needs_context=True),
                Rule("digits", r"\b\d{6,14}\b", 0.15, needs_context=True),
            ],
            context=split_words(
                "driver drivers driver's license licence lic dl dls cdl permit driving"
            ),
            boost=0.45,
            before=5,
            after=1,
            name="TollhouseDriverLicenseRecognizer",
        )


_MONTH = (
    r"jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|january|february|march|april"
    r"|june|july|august|september|october|november|december"
)
_WEEKDAY = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_REAL_DATE = re.compile(
    rf"(?i)\b(?:{_MONTH}|{_WEEKDAY})\b|\b(?:1[5-9]|20)\d\d\b|\d{{1,4}}[/.-]\d{{1,2}}(?:[/.-]\d{{1,4}})?"
    r"|\b\d{1,2}(?:st|nd|rd|th)\b|\b\d{1,2}:\d{2}\b|\b\d{1,2}[ ]?(?:am|pm|a\.m\.|p\.m\.)"
)


class NerRecognizer(SpacyRecognizer):
    """The NER model's entities, one line at a time, without vague dates and times."""

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
    ) -> list[RecognizerResult]:
        """spaCy's entities, split at line breaks, trimmed, dates kept only when specific."""
        kept: list[RecognizerResult] = []
        results: list[RecognizerResult] = super().analyze(text, entities, nlp_artifacts)
        for result in results:
            for start, end in _line_pieces(text, result.start, result.end):
                piece = text[start:end]
                if result.entity_type == "DATE_TIME" and not _REAL_DATE.search(piece):
                    continue
                if not any(c.isalnum() for c in piece):
                    continue
                kept.append(
                    RecognizerResult(
                        entity_type=result.entity_type,
                        start=start,
                        end=end,
                        score=result.score,
                        analysis_explanation=result.analysis_explanation,
                        recognition_metadata=result.recognition_metadata,
                    )
                )
        return kept


def _line_pieces(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """``text[start:end]`` cut at line breaks, each piece stripped of blanks around it."""
    pieces = []
    pos = start
    for line in text[start:end].split("\n"):
        lead = len(line) - len(line.lstrip())
        stripped = line.strip()
        if stripped:
            pieces.append((pos + lead, pos + lead + len(stripped)))
        pos += len(line) + 1
    return pieces
