"""Postal addresses: street lines, unit and PO-box designators, and the block around them.

spaCy's small models see a city here and there but not "3247 Rua Igreja 25 / Apt. 236".
This recognizer finds *anchors*, parts that are unmistakably address (a house number with
a street designator in English or European order, an apartment or suite, a PO box, a
military address, an intersection), then grows each anchor over what surrounds it in a
postal address: further address lines (unit, city, region, postcode, country), the
recipient lines just above in the same block, or ", City, ST 12345" on the same line.
Number-words-number sequences ("172 Maneeži 75") count only next to an address word
("lives at", "address", "ship to"...).
"""

from __future__ import annotations

import re

from presidio_analyzer import RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from governance.pii.recognizers_base import (
    LETTER,
    UPPER,
    ContextRegexRecognizer,
    Rule,
    alternation,
    words_of,
)
from governance.pii.recognizers_lexicon import (
    PLACE_PARTICLES,
    STOPWORDS,
    STREET_ENDINGS,
    STREET_PREFIXES,
    STREET_SUFFIXES,
    split_words,
)

CONTEXT = split_words(
    "address addresses live lives living lived located location moved move corner deliver "
    "delivery ship shipping send sent mail mailing visit meet stay staying reside resides "
    "residence home house return office headquarters hq based street"
)

_HOUSE = r"\d{1,6}[A-Za-z]?"
_CAP = rf"{UPPER}[\w'\u2019.-]*"
_ANY = r"[^\W\d_][\w'\u2019.-]*"
# A word that is not a sentence word ("in", "the", "my"...): address names never have them.
_NOT_STOP = rf"(?!(?i:{alternation(STOPWORDS - PLACE_PARTICLES)})\b)"
_NAME = _NOT_STOP + _ANY
_SEPARATE = split_words(
    "tér u. utca út krt. körút rkp. köz sor tee iela gatve cesta trg stræti vegur street "
    "st. road rd. avenue ave. lane drive strasse straße str. gasse"
)
_PREFIXES = alternation(STREET_PREFIXES)
# Building and house numbers written before an anchor ("3369 24 Clarke Avenue").
_LEAD = re.compile(r"(?<![\w.,-])(?:\d{1,6}[A-Za-z]?[ \t]+){1,2}\Z")


def _first_words(phrases: frozenset[str]) -> frozenset[str]:
    return frozenset(words_of(p)[0][2] for p in phrases if words_of(p))


STRONG = 0.7
UNIT = 0.65
WEAK = 0.35

_RULES = (
    # English order: house number, name, designator ("24 Clarke Avenue", "1737 Cheriton Dr").
    Rule(
        "number-name-suffix",
        rf"\b{_HOUSE}[ \t]+(?:{_CAP}[ \t]+){{1,4}}(?i:{alternation(STREET_SUFFIXES)})\b\.?",
        STRONG,
    ),
    # Name, separate designator, number ("Erzsébet tér 19.", "Augsburger Strasse 36").
    Rule(
        "name-suffix-number",
        rf"(?i:{alternation(_SEPARATE)})[ \t]+{_HOUSE}\b\.?",
        STRONG,
        trigger=_first_words(frozenset(_SEPARATE)),
        back=rf"(?<![\w'\u2019.-])(?:{_CAP}[ \t]+){{1,3}}\Z",
    ),
    # Designator first ("Rua do Arenque 1634", "ul. Północna 73", "Via delle Coste 41").
    Rule(
        "prefix-name-number",
        rf"(?<!\w)(?i:{_PREFIXES})[ \t]+(?:{_NAME}[ \t]+){{0,5}}{_HOUSE}\b\.?",
        STRONG,
        trigger=_first_words(STREET_PREFIXES),
    ),
    # Designator first after a house number ("76556 29 Rue de Tanger"): see `check`.
    Rule(
        "number-prefix-name",
        rf"(?<!\w)(?i:{_PREFIXES})[ \t]+{_NAME}(?:[ \t]+{_NAME}){{0,4}}",
        STRONG,
        trigger=_first_words(STREET_PREFIXES),
    ),
    # One-word street names of Germanic/Nordic/Finnish/Dutch ("Ringvej 144", "Pohlstrasse 9").
    Rule(
        "compound-number",
        rf"{LETTER}+(?:['\u2019-]{LETTER}+)*[ \t]+{_HOUSE}\b\.?",
        STRONG,
        endings=tuple(e.rstrip(".") for e in STREET_ENDINGS),
        back=rf"(?:(?<![\w'\u2019.-]){_CAP}[ \t]+)?\Z",
    ),
    Rule(
        "unit",
        r"(?<!\w)(?i:apt|apartment|suite|ste|p\.?[ \t]?o\.?[ \t]?box|post[ \t]?office[ \t]box"
        r"|postbox|private[ \t]bag|locked[ \t]bag|gpo[ \t]box)\.?[ \t]*(?:no\.?|#)?[ \t]*"
        r"\d{1,6}[A-Za-z]?\b",
        UNIT,
        trigger=frozenset(
            split_words("apt apartment suite ste p po post postbox private locked gpo")
        ),
    ),
    Rule(
        "unit-ambiguous",
        r"(?:Unit|Flat|Box|Room|Floor|Bldg|Building|Lot)\.?[ \t]*#?[ \t]*\d{1,5}[A-Za-z]?\b",
        WEAK,
        trigger=frozenset(["unit", "flat", "box", "room", "floor", "bldg", "building", "lot"]),
    ),
    Rule(
        "military-box",
        r"(?i:PSC|CMR|Unit)[ \t]+\d{3,5},?[ \t]+(?i:Box)[ \t]+\d{3,5}\b",
        STRONG,
        trigger=frozenset({"psc", "cmr", "unit"}),
    ),
    Rule(
        "military-post",
        r"(?i:APO|FPO|DPO)[ \t]+(?i:AA|AE|AP)[ \t]+\d{5}\b",
        STRONG,
        trigger=frozenset({"apo", "fpo", "dpo"}),
    ),
    Rule(
        "ship",
        rf"(?i:USS|USNS|USNV|USCGC|HMS)[ \t]+{_NAME}(?:[ \t]+{_CAP})?",
        UNIT,
        trigger=frozenset({"uss", "usns", "usnv", "uscgc", "hms"}),
    ),
    Rule(
        "corner",
        rf"(?i:the[ \t]+)?(?i:corner[ \t]+of)[ \t]+(?:{_NOT_STOP}[\w'\u2019.-]+[ \t]+){{1,5}}?and"
        rf"(?:[ \t]+{_NOT_STOP}[\w'\u2019.-]+){{1,4}}",
        STRONG,
        trigger=frozenset({"the", "corner"}),
    ),
    # Number, words, number: a street only with an address word nearby ("lives at ...").
    Rule(
        "number-words-number",
        rf"\b(?:\d{{1,6}}[ \t]+)?{_HOUSE}[ \t]+(?:{_NAME}[ \t]+){{1,4}}?{_HOUSE}\b",
        WEAK,
    ),
)
_WORDS = re.compile(r"[^\s,()]+")
_LINE_MARKERS = re.compile(r"[ \t>?*•·|-]*")  # used with .match(text, pos)
_POSTAL_TAIL = re.compile(r"\d{3,6}(?:[ -]\d{2,4})?\.?$")
_SEGMENT = re.compile(rf"(?:,[ \t]*|[ \t]+)({_ANY}|\d{{2,6}})(?:[ \t]+(?:{_ANY}|\d{{2,6}})){{0,3}}")


def _tokens(text: str) -> list[str]:
    return [t.strip(".'\u2019\"!?;") for t in _WORDS.findall(text)]


def _placelike(line: str, *, max_tokens: int = 6) -> bool:
    """Short, no sentence words, no labels or addresses of other kinds: city, region..."""
    if not line or len(line) > 60 or any(s in line for s in (":", "@", "http", "www.")):
        return False
    tokens = [t for t in _tokens(line) if t]
    if not tokens or len(tokens) > max_tokens:
        return False
    return not any(t.lower() in STOPWORDS and t.lower() not in PLACE_PARTICLES for t in tokens)


class AddressRecognizer(ContextRegexRecognizer):
    """STREET_ADDRESS: anchors grown into the address lines and segments around them."""

    def __init__(self) -> None:
        super().__init__(
            "STREET_ADDRESS",
            _RULES,
            context=CONTEXT,
            boost=0.35,
            before=6,
            after=0,
            name="TollhouseAddressRecognizer",
        )

    def check(self, rule: Rule, match: re.Match[str], score: float) -> float | None:
        """A house number must come before "Rue de Tanger" (no number after it)."""
        if rule.name == "number-prefix-name":
            before = match.string[max(0, match.start() - 16) : match.start()]
            return score if _LEAD.search(before) else None
        return score

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
    ) -> list[RecognizerResult]:
        """Anchors (and context-backed weak matches), grown into whole addresses, merged."""
        spans = []
        for found in super().analyze(text, entities, nlp_artifacts):
            if found.score < 0.5:
                continue
            lead = _LEAD.search(text[max(0, found.start - 16) : found.start])
            start = found.start - (len(lead.group()) if lead else 0)
            spans.append((start, found.end, found.score))
        grown = [(*_grow(text, start, end), score) for start, end, score in spans]
        return [self.result(s, e, score) for s, e, score in _merge(text, grown)]


def _line_bounds(text: str, pos: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return start, len(text) if end < 0 else end


def _content(text: str, start: int, end: int) -> tuple[int, int]:
    """The line ``text[start:end]`` without quote markers and surrounding blanks."""
    marker = _LINE_MARKERS.match(text, start, end)
    lead = marker.end() if marker else start
    while end > lead and text[end - 1] in " \t.,;?!":
        end -= 1
    return lead, end


def _grow(text: str, start: int, end: int) -> tuple[int, int]:
    """Extend an anchor over the rest of its address (lines around, segments after)."""
    line_start, line_end = _line_bounds(text, start)
    content_start, _ = _content(text, line_start, line_end)
    if start <= content_start:  # the anchor opens its line: take recipient/street lines above
        pos = line_start
        for _ in range(3):
            if pos == 0:
                break
            prev_start, prev_end = _line_bounds(text, pos - 1)
            lead, tail = _content(text, prev_start, prev_end)
            if lead >= tail or not _placelike(text[lead:tail], max_tokens=7):
                break
            start, pos = lead, prev_start
    # Segments after the anchor on its own line: ", Goiânia", " CHARLEROI Victoria".
    last_line_start, last_line_end = _line_bounds(text, max(end - 1, start))
    while True:
        seg = _SEGMENT.match(text, end, last_line_end)
        if not seg or not _placelike(seg.group(0).strip(" ,\t"), max_tokens=4):
            break
        if not seg.group(0).startswith(",") and not seg.group(1)[:1].isupper():
            break
        end = seg.end()
    # Whole lines after, if the anchor closes its line: unit, city, region, country, code.
    _, content_end = _content(text, last_line_start, last_line_end)
    if end >= content_end:
        pos = last_line_end
        blank_skipped = False
        for _ in range(4):
            if pos >= len(text):
                break
            next_start, next_end = _line_bounds(text, pos + 1)
            lead, tail = _content(text, next_start, next_end)
            if lead >= tail:
                if blank_skipped:
                    break
                after_start, after_end = _line_bounds(text, min(next_end + 1, len(text)))
                a_lead, a_tail = _content(text, after_start, after_end)
                following = text[a_lead:a_tail]
                if not (_placelike(following) and _POSTAL_TAIL.search(following)):
                    break
                blank_skipped, pos = True, next_end
                continue
            if not _placelike(text[lead:tail]):
                break
            end, pos = tail, next_end
    return start, end


def _merge(text: str, spans: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """Overlapping spans, or spans apart by blanks and commas only, become one."""
    merged: list[tuple[int, int, float]] = []
    for start, end, score in sorted(spans):
        if merged and not text[merged[-1][1] : start].strip(" \t,"):
            last_start, last_end, last_score = merged[-1]
            merged[-1] = (last_start, max(last_end, end), max(last_score, score))
        else:
            merged.append((start, end, score))
    return merged
