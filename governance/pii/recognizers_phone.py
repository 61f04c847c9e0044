"""Phone numbers in the formats people write them, national and international.

Presidio's own recognizer only keeps what `phonenumbers` validates for eight regions, at
a score below the usual threshold, and runs its matcher once per region (slow on long
prompts). Here one expression finds every phone-shaped run of digit groups (``+`` or
``00`` country code, ``(0)`` trunk prefix, ``(area)`` code, extensions), and the score
says how sure the shape makes us: valid for a country per `phonenumbers` > a common
national layout > bare digit groups, which need a context word (phone, call, fax...).
"""

from __future__ import annotations

import re

import phonenumbers

from governance.pii.recognizers_base import ContextRegexRecognizer, Rule
from governance.pii.recognizers_lexicon import split_words

CONTEXT = split_words(
    "phone telephone tel mobile mob cell cellphone fax call called calling ring dial number "
    "contact reach text sms whatsapp office home work landline hotline answering registered "
    "ph voicemail"
)
# Regions a number without a country code is tried against, most common first.
REGIONS = ("US", "GB", "DE", "FR", "IN", "AU", "BR")

_PHONE = r"""
(?<![\w+@/.-])(?<!\d[ .-])
(?P<v>
  (?:(?:\+|\b00)\d{1,3}[ .-]?(?:\(0\)[ .-]?)?)?     # country code, optional (0)
  (?:\(\d{1,5}\)[ .-]?)?                             # (area code)
  \d{1,12}(?:[ .-]\d{1,10}){0,5}                    # digit groups
  (?:[ ]?(?:x|ext\.?|extension|\#)[ ]?\d{1,6})?      # extension
)
(?![\w@]|[.-]\d|[ ]\d)
"""
_NANP = re.compile(r"(?:\+?1[ .-]?)?(?:\(\d{3}\)[ ]?|\d{3}[ .-])\d{3}[ .-]\d{4}\b")
_SSN_SHAPE = re.compile(r"\d{3}([ .-])\d{2}\1\d{4}")
_DATE_SHAPE = re.compile(r"\d{1,4}([./-])\d{1,2}\1\d{1,4}")
_IP_SHAPE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_EXTENSION = re.compile(r"[ ]?(?:x|ext\.?|extension|#)[ ]?\d{1,6}$")

STRONG = 0.75  # valid number with a country code, or valid in a listed region
LAYOUT = 0.6  # North-American layout, (area) code, or a +country code
WEAK = 0.35  # digit groups only: needs a context word to reach 0.5+


class PhoneRecognizer(ContextRegexRecognizer):
    """PHONE_NUMBER: digit groups shaped like a phone number, 7 to 15 digits."""

    def __init__(self) -> None:
        super().__init__(
            "PHONE_NUMBER",
            [Rule("phone", _PHONE, WEAK, re.VERBOSE)],
            context=CONTEXT,
            boost=0.3,
            before=4,
            after=2,
            name="TollhousePhoneRecognizer",
        )

    def check(self, rule: Rule, match: re.Match[str], score: float) -> float | None:
        """Drop non-phones (SSN, date, IP shapes, long card-like runs); score the rest."""
        value = match.group("v")
        number = _EXTENSION.sub("", value)
        digits = sum(c.isdigit() for c in number)
        if not 7 <= digits <= 15:
            return None
        grouped = any(c in " .-()" for c in number)
        if not grouped and not number.startswith("+") and digits > 12:
            return None  # a long bare run is a card or account number, not a phone
        if _SSN_SHAPE.fullmatch(number) or _DATE_SHAPE.fullmatch(number):
            return None
        if _IP_SHAPE.fullmatch(number):
            return None
        international = number.startswith(("+", "00"))
        if (international or digits >= 9) and _valid(number, international):
            return STRONG
        if international or _NANP.fullmatch(number) or number.startswith("("):
            return LAYOUT
        return score


def _valid(number: str, international: bool) -> bool:
    """Whether `phonenumbers` finds ``number`` valid (for its country code, or a region)."""
    candidate = "+" + number[2:] if number.startswith("00") else number
    regions = (None,) if international else REGIONS
    for region in regions:
        try:
            parsed = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return True
    return False
