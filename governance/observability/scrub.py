"""The last line of defence: a regex scrubber for log lines and span attributes.

Tollhouse promises that keys, secrets and personal data never reach a log line, a span or a
metric label. Presidio guards the traffic; this module guards the telemetry, where a check
has to cost microseconds, not milliseconds. Each kind of value is a rule: a compiled pattern
behind a cheap substring check (a lowered copy of the text for words, a "shape" of it for
digit layouts), so a clean line costs a few ``in`` tests. Rules run in a fixed order,
credentials before personal data, and number-like PII is confirmed by its checksum (Luhn,
IBAN mod-97) so that counters, ports, ids and timestamps stay readable.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

SECRET = "[SECRET]"  # noqa: S105 - the replacement token, not a secret
EMAIL_ADDRESS = "[EMAIL_ADDRESS]"
PHONE_NUMBER = "[PHONE_NUMBER]"
CREDIT_CARD = "[CREDIT_CARD]"
IBAN_CODE = "[IBAN_CODE]"
US_SSN = "[US_SSN]"

MIN_SECRET_LENGTH = 8
"""Literal secrets shorter than this are ignored: replacing short strings would eat words."""

_SHAPE = bytes.maketrans(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"0" * 10 + b"A" * 26)


def shape_of(text: str) -> str:
    """The text with every ASCII digit as ``0`` and upper-case letter as ``A`` (non-ASCII
    characters become several other characters), so that "could there be a phone number
    here" is a substring test. Bytes translate fast; ``str`` answers ``in`` fast."""
    return text.encode("utf-8", "surrogatepass").translate(_SHAPE).decode("latin-1")


class Rule(Protocol):
    """One kind of sensitive value. ``lower`` and ``shape`` are views of ``text`` (its
    ``str.lower()`` and ``shape_of``), made once and shared by all rules."""

    @property
    def name(self) -> str:
        """What the rule finds, for readers and tests."""
        ...

    def apply(self, text: str, lower: str, shape: str) -> str:
        """The text with this rule's values replaced (equal to ``text`` if none were)."""
        ...


@dataclass(frozen=True, slots=True)
class PatternRule:
    """A pattern replaced wherever it matches, tried only when the lowered text holds one
    of ``words`` or the shape holds one of ``shapes`` (a rule with neither always runs).

    The checks must be necessary conditions for a match, never mere hints: a pattern
    that ignores case is compiled with ``re.ASCII``, and digit patterns use ``re.ASCII``
    so that ``\\d`` means what the shape counts.
    """

    name: str
    pattern: re.Pattern[str]
    replacement: str | Callable[[re.Match[str]], str]
    words: tuple[str, ...] = ()
    shapes: tuple[str, ...] = ()

    def apply(self, text: str, lower: str, shape: str) -> str:
        # Loops, not any(): this runs some twenty times for every log line.
        for word in self.words:
            if word in lower:
                return self.pattern.sub(self.replacement, text)
        for piece in self.shapes:
            if piece in shape:
                return self.pattern.sub(self.replacement, text)
        if self.words or self.shapes:
            return text
        return self.pattern.sub(self.replacement, text)


# -- credentials ------------------------------------------------------------------------------

_TOLLHOUSE_KEY = re.compile(r"(th-[0-9a-fA-F]{8}-)[A-Za-z0-9_-]{20,}")
_SCRUBBED_TOLLHOUSE_KEY = re.compile(r"(th-[0-9a-fA-F]{8}-)\[SECRET\]")
_AUTH_SCHEME = re.compile(r"(?:bearer|basic|token|digest|apikey)\s+", re.IGNORECASE | re.ASCII)


def _redact_token(token: str) -> str:
    """``[SECRET]``, but a Tollhouse key keeps its visible prefix (it names the key)."""
    key = _TOLLHOUSE_KEY.fullmatch(token) or _SCRUBBED_TOLLHOUSE_KEY.fullmatch(token)
    return f"{key.group(1)}{SECRET}" if key else SECRET


def _redact_credential(value: str) -> str:
    """A credential redacted, keeping an HTTP auth scheme such as ``Bearer``."""
    scheme = _AUTH_SCHEME.match(value)
    if scheme and scheme.end() < len(value):
        return scheme.group() + _redact_token(value[scheme.end() :])
    return _redact_token(value)


_PEM = re.compile(
    r"-----BEGIN (?P<kind>[A-Z0-9 ]*)PRIVATE KEY-----"
    r"(?:.*?-----END (?P=kind)PRIVATE KEY-----|(?:[A-Za-z0-9+/=\s:,-]|\\[nrt])*)",
    re.DOTALL,
)
_URL_PASSWORD = re.compile(r"(?P<head>://[^\s:/?#@]*):[^\s/?#]+@")
_BEARER = re.compile(
    r"\b(?P<scheme>bearer\s+)(?P<token>[A-Za-z0-9._~+/-]++=*+)(?!\[)",  # not th-…-[SECRET]
    re.IGNORECASE | re.ASCII,
)


def _redact_bearer(match: re.Match[str]) -> str:
    return match.group("scheme") + _redact_token(match.group("token"))


_VENDOR_TOKEN = re.compile(
    r"(?<![A-Za-z0-9])(?:sk-[A-Za-z0-9_-]{20,}"  # OpenAI, Anthropic (sk-proj-, sk-ant-)
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|AIza[A-Za-z0-9_-]{35}"  # Google (Gemini)
    r"|ghp_[A-Za-z0-9]{36}|github_pat_\w{22,})",  # GitHub
    re.ASCII,
)
_AWS_KEY_ID = re.compile(r"A(?<![A-Za-z0-9_]A)(?:KIA|SIA)[0-9A-Z]{16}(?![A-Za-z0-9_])")
_JWT = re.compile(r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[\w-]*")

# key=value, key: value, "key": "value": the key ends in a sensitive word ("max_tokens" and
# "token_type" are not credentials). The pattern starts at the word; KeyValueRule finds it.
_KEY_WORDS = (
    "key", "password", "passwd", "passphrase", "pwd", "secret", "token", "authorization",
    "cookie", "credential", "credentials",
)  # fmt: skip
_KEY_ENDS = frozenset("\"'\\:= \t\n\r\f\v")  # what may follow the word: a quote, space, separator
_KEY_VALUE = re.compile(
    r"""(?:key(?:(?<=api[_-]key)|(?<=apikey)|(?<=secret[_-]key)|(?<=secretkey)
              |(?<=private[_-]key)|(?<=privatekey)|(?<=access[_-]key)|(?<=accesskey)
              |(?<=signing[_-]key)|(?<=signingkey)|(?<=encryption[_-]key))
          |pass(?:word|wd|phrase)|pwd|secret|token|authorization|cookie|credentials?)
        (?:\\?["'])?\s*[:=]\s*
        (?: "(?P<dq>(?:[^"\\\r\n]|\\.)*)"
          | '(?P<sq>[^'\r\n]*)'
          | \\"(?P<eq>(?:[^"\\]|\\\\[^"])*)\\"
          | (?:\\*["'])?(?P<bare>(?:(?:bearer|basic|token|digest|apikey)\s+)?+
                                 [^\s"'\\,;&\[\]{}<>]++(?!\[))
        )""",
    re.IGNORECASE | re.ASCII | re.VERBOSE,
)
_KEEP_VALUES = frozenset({"null", "none", "true", "false"})


def _redact_key_value(match: re.Match[str]) -> str:
    for group in ("dq", "sq", "eq", "bare"):
        value = match.group(group)
        if value is not None:
            break
    if not value or value.lower() in _KEEP_VALUES:
        return match.group()
    start, end = match.span(group)
    whole = match.string
    return whole[match.start() : start] + _redact_credential(value) + whole[end : match.end()]


@dataclass(frozen=True, slots=True)
class KeyValueRule:
    """Values of credential-like keys. Words such as "token" are common in clean lines
    ("prompt_tokens=12"), so instead of scanning, the pattern is tried only where one of
    the words starts."""

    name: str = "key_value"

    def scan(self, text: str) -> str:
        """The same replacements found by scanning the whole text (slower)."""
        return _KEY_VALUE.sub(_redact_key_value, text)

    def apply(self, text: str, lower: str, shape: str) -> str:
        if len(lower) != len(text):  # lower-casing moved the positions (rare: "İ")
            return self.scan(text)
        starts: list[int] = []
        for word in _KEY_WORDS:
            at = lower.find(word)
            while at >= 0:
                end = at + len(word)
                if lower[end : end + 1] in _KEY_ENDS:  # not "max_tokens", "token_type"
                    starts.append(at)
                at = lower.find(word, end)
        parts: list[str] = []
        done = 0
        for start in sorted(starts):
            match = _KEY_VALUE.match(text, start) if start >= done else None
            if match:
                parts += (text[done:start], _redact_key_value(match))
                done = match.end()
        return "".join((*parts, text[done:])) if parts else text


# -- personal data ----------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+-])(?<!://)[\w.%+-]+(?:@|%40)"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])"
)

# 13+ digits starting like a card (2-6: Mastercard, Amex, Visa, Discover, UnionPay...; never
# 1, so epoch milliseconds stay), in groups separated by single spaces or dashes.
_CARD_CANDIDATE = re.compile(
    r"[2-6](?<![\w.+-][2-6])(?=(?:[ -]?\d){12})\d{3,}(?:[ -]\d+)*(?!\w|[.,]\d)", re.ASCII
)
_DIGIT_GROUP = re.compile(r"\d+", re.ASCII)


def luhn_valid(digits: str) -> bool:
    """Whether a string of decimal digits passes the Luhn check (card numbers do)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _is_card(text: str, groups: list[tuple[int, int]]) -> bool:
    """Whether these digit groups of the text read as one card number: 13-19 digits, a
    card's first digit, card-like grouping (4 then 3-6 each) and a valid Luhn digit."""
    digits = "".join(text[start:end] for start, end in groups)
    if not 13 <= len(digits) <= 19 or digits[0] not in "23456":
        return False
    lengths = [end - start for start, end in groups]
    if len(groups) > 1 and (lengths[0] != 4 or not all(3 <= n <= 6 for n in lengths[1:])):
        return False
    return luhn_valid(digits)


def _redact_cards(match: re.Match[str]) -> str:
    """Each longest run of the candidate's digit groups that is a valid card replaced
    (a card followed by its CVV or another number is still found)."""
    text = match.group()
    groups = [m.span() for m in _DIGIT_GROUP.finditer(text)]
    parts: list[str] = []
    done = first = 0
    while first < len(groups):
        for last in range(len(groups) - 1, first - 1, -1):
            if _is_card(text, groups[first : last + 1]):
                parts += (text[done : groups[first][0]], CREDIT_CARD)
                done = groups[last][1]
                first = last
                break
        first += 1
    return "".join((*parts, text[done:])) if parts else text


_IBAN_CANDIDATE = re.compile(
    r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d\d(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])", re.ASCII
)


_IBAN_LETTERS = str.maketrans({chr(65 + n): str(10 + n) for n in range(26)})  # A=10 ... Z=35


def iban_valid(iban: str) -> bool:
    """Whether a compact upper-case IBAN has a plausible length and a valid mod-97 checksum."""
    if not 15 <= len(iban) <= 34 or not iban[:2].isalpha() or not iban[2:4].isdigit():
        return False
    return int((iban[4:] + iban[:4]).translate(_IBAN_LETTERS)) % 97 == 1


def _redact_iban(match: re.Match[str]) -> str:
    """The candidate with its longest valid IBAN prefix (whole groups) replaced."""
    text = match.group()
    ends = [len(text), *(i for i in range(len(text) - 1, 0, -1) if text[i] == " ")]
    for end in ends:
        if iban_valid(text[:end].replace(" ", "")):
            return IBAN_CODE + text[end:]
    return text


_SSN = re.compile(r"\d(?<![\w-]\d)\d\d-\d\d-\d{4}(?![\w-])", re.ASCII)


def _redact_ssn(match: re.Match[str]) -> str:
    """SSN-shaped numbers that the SSA never issues (area 000, 666, 9xx; group 00;
    serial 0000) are not SSNs."""
    area, group, serial = match.group().split("-")
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return match.group()
    return US_SSN


_PHONE_INTERNATIONAL = re.compile(
    r"\+(?<![\w+]\+)[1-9]\d{0,2}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,4}){2,5}(?!\w|[.,]\d)",
    re.ASCII,
)


def _redact_international_phone(match: re.Match[str]) -> str:
    """E.164 allows 8 to 15 digits; fewer is a signed number, not a phone."""
    digits = sum(char.isdigit() for char in match.group())
    return PHONE_NUMBER if 8 <= digits <= 15 else match.group()


# North American numbers: (202) 555-0143, 202-555-0143, 202.555.0143 (one kind of separator).
_PHONE_US = re.compile(
    r"(?:(?<!\w)\([2-9]\d\d\)[ ]?[2-9]\d\d[-. ]"
    r"|(?<![\w.+-])[2-9]\d\d(?P<sep>[-.])[2-9]\d\d(?P=sep))\d{4}(?![\w-]|\.\d)",
    re.ASCII,
)

RULES: tuple[Rule, ...] = (
    PatternRule("private_key", _PEM, SECRET, words=("private key",)),
    PatternRule("url_password", _URL_PASSWORD, rf"\g<head>:{SECRET}@", words=("://",)),
    KeyValueRule(),
    PatternRule("bearer", _BEARER, _redact_bearer, words=("bearer",)),
    PatternRule("tollhouse_key", _TOLLHOUSE_KEY, rf"\g<1>{SECRET}", words=("th-",)),
    PatternRule(
        "vendor_token",
        _VENDOR_TOKEN,
        SECRET,
        words=("sk-", "hf_", "aiza", "ghp_", "github_pat_"),
    ),
    PatternRule("aws_key_id", _AWS_KEY_ID, SECRET, words=("akia", "asia")),
    PatternRule("jwt", _JWT, SECRET, words=("eyj",)),
    PatternRule("email", _EMAIL, EMAIL_ADDRESS, words=("@", "%40")),
    PatternRule(
        "credit_card",
        _CARD_CANDIDATE,
        _redact_cards,
        shapes=("0000000", "0000 000", "0000-000"),
    ),
    PatternRule("iban", _IBAN_CANDIDATE, _redact_iban, shapes=("AA00",)),
    PatternRule("us_ssn", _SSN, _redact_ssn, shapes=("000-00-0000",)),
    PatternRule(
        "phone_international", _PHONE_INTERNATIONAL, _redact_international_phone, shapes=("+0",)
    ),
    PatternRule(
        "phone_us",
        _PHONE_US,
        PHONE_NUMBER,
        shapes=("000-000-0000", "000.000.0000", "(000)"),
    ),
)
"""Applied in this order: credentials first, then personal data."""


class Scrubber:
    """Replaces secrets and personal data in text bound for logs, spans and metric labels.

    Besides the patterns in ``RULES`` it replaces literal secrets known at start-up (the
    configured upstream API keys, say) wherever they occur, whatever they look like.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        for value in secrets:
            self.add_secret(value)

    def add_secret(self, value: str) -> None:
        """Also replace this literal value from now on (ignored when shorter than 8).

        The secrets are an immutable tuple swapped in whole, so a concurrent ``scrub``
        sees the old set or the new one; longest first, so that a secret containing
        another is replaced whole.
        """
        if len(value) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            if value not in self._secrets:
                self._secrets = tuple(sorted((*self._secrets, value), key=len, reverse=True))

    def scrub(self, text: str) -> str:
        """The text with every secret and personal-data value replaced by a token."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, SECRET)
        lower = text.lower()
        shape = shape_of(text)
        for rule in RULES:
            scrubbed = rule.apply(text, lower, shape)
            if scrubbed != text:
                text = scrubbed
                lower = text.lower()
                shape = shape_of(text)
        return text

    def scrub_value(self, value: object) -> object:
        """A string, or a list/tuple of strings, scrubbed (same type); anything else as is.

        For span attributes and ``extra`` fields: strings, numbers, booleans, or
        sequences of those.
        """
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, list):
            return [self.scrub(item) if isinstance(item, str) else item for item in value]
        if isinstance(value, tuple):
            return tuple(self.scrub(item) if isinstance(item, str) else item for item in value)
        return value
