"""Who someone is: names the NER model misses, titles, ages, nationality and faith, employer.

The small spaCy models miss names in common written forms: speaker labels of a transcript
("Ubul: What a wife."), names introduced by a cue ("my name is vitoria", "call me Aantje",
a signature under "Regards,"), and the later, shorter mentions of someone named in full
once; `NameCueRecognizer` and `NameEchoRecognizer` cover those. Titles are courtesy
titles before a name, and job titles on their own line or after "I work as". Companies
are names ending in a company word, "A, B and C" partnerships, and employers after
"works for".
"""

from __future__ import annotations

import re

from presidio_analyzer import RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from governance.pii.recognizers_base import (
    LETTER,
    UPPER,
    WORD,
    ContextRegexRecognizer,
    PhraseLexicon,
    Rule,
    alternation,
    shared_index,
    text_words,
)
from governance.pii.recognizers_lexicon import (
    HONORIFICS,
    NRP,
    OCCUPATIONS,
    ORG_SUFFIXES,
    STOPWORDS,
    plural_forms,
    split_words,
)

_NOT_STOP = rf"(?!(?i:{alternation(STOPWORDS)})\b)"


def _words(spaced: str) -> frozenset[str]:
    return frozenset(spaced.split())


# Line labels of forms and transcripts that are not speakers ("Note: ...").
FIELD_LABELS = _words(
    "note notes subject from to cc bcc date time re fwd question answer q a summary title "
    "name email e-mail phone mobile fax address website web url error warning example input "
    "output user assistant system human ai bot step tip update edit source result status "
    "description total price cost location reason comment comments answer response reply "
    "task goal context instructions instruction prompt message query"
)

_CAPITALISED = rf"{UPPER}{LETTER}+"
_NAME_WORD = rf"{UPPER}{LETTER}*(?:['\u2019-]{LETTER}+)*\.?"
_ANYCASE_NAME = rf"{_NOT_STOP}{LETTER}+(?:['\u2019-]{LETTER}+)*"


class TitleRecognizer(ContextRegexRecognizer):
    """TITLE: courtesy titles before a name ("Mrs. Lennox") and job titles."""

    def __init__(self) -> None:
        heads = alternation(OCCUPATIONS)
        super().__init__(
            "TITLE",
            [
                Rule(
                    "honorific",
                    rf"(?:{alternation(HONORIFICS)})\.?(?=[ \t]+{UPPER})"
                    rf"|(?i:mr|mrs|ms|dr|prof)\.(?=[ \t]+{LETTER})",
                    0.6,
                    trigger=frozenset(h.lower() for h in HONORIFICS),
                ),
                Rule(
                    "job-title-cue",
                    r"(?i:(?:i[ \t]+am|i'm|works?[ \t]+as|worked[ \t]+as|working[ \t]+as"
                    r"|job[ \t]+title(?:[ \t]+is)?|occupation(?:[ \t]+is)?|profession(?:[ \t]+is)?"
                    r"|position(?:[ \t]+is)?)[: \t]+(?:an?[ \t]+|the[ \t]+)?)"
                    rf"(?P<v>(?:{_NOT_STOP}[\w'\u2019-]+[ \t]+){{0,3}}(?i:{heads})(?i:s|es)?)\b",
                    0.6,
                    trigger=_words(
                        "i i'm work works worked working job occupation profession position"
                    ),
                ),
            ],
            name="TollhouseTitleRecognizer",
        )

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
    ) -> list[RecognizerResult]:
        """Courtesy titles, cued job titles, and lines that are a job title and nothing else."""
        results = super().analyze(text, entities, nlp_artifacts)
        pos = 0
        for line in text.split("\n"):
            span = _job_title_line(line)
            if span is not None:
                results.append(self.result(pos + span[0], pos + span[1], 0.6))
            pos += len(line) + 1
        return results


_LINE_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*|&|,|\S")


def _job_title_line(line: str) -> tuple[int, int] | None:
    """The span of ``line`` if it is only a job title ("Children's librarian", "Nurse")."""
    if len(line) > 70:
        return None
    tokens = [(m.start(), m.end(), m.group().lower()) for m in _LINE_WORD.finditer(line)]
    while tokens and tokens[0][2] in (">", "?", "*", "•", "-"):
        tokens.pop(0)
    while tokens and tokens[-1][2] in (".", ",", ";"):
        tokens.pop()
    words = [t for t in tokens if t[2] != ","]
    if not words or len(words) > 7:
        return None
    head = words[-1][2]
    if head not in OCCUPATIONS and head.rstrip("s") not in OCCUPATIONS:
        return None
    if any((w in STOPWORDS and w not in ("and", "of")) or not w[0].isalpha() for _, _, w in words):
        return None
    return tokens[0][0], tokens[-1][1]


class AgeRecognizer(ContextRegexRecognizer):
    """AGE: "47 years old", "aged 40", "I just turned 47", "I'm 35."."""

    _NOT_A_QUANTITY = (
        r"(?![ \t]*(?:%|percent|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|times|degrees"
        r"|am\b|pm\b|o'clock|dollars|euros|pounds|kg|lbs?|km|miles|[.:/,]\d|[-\u2013]\d))"
    )

    def __init__(self) -> None:
        super().__init__(
            "AGE",
            [
                Rule(
                    "years-old",
                    r"\b(?P<v>\d{1,3})[ \t-]*(?i:years?|yrs?)[ \t-]*(?i:old|of[ \t]+age)\b",
                    0.65,
                ),
                Rule("yo", r"\b(?P<v>\d{1,3})[ \t]?(?i:yo|y/o|y\.o\.)(?!\w)", 0.65),
                Rule(
                    "cue",
                    r"(?i:(?:aged?|turn(?:ed|s|ing)?|will[ \t]+be|i'?ll[ \t]+be|age[ \t]*(?:is|:)"
                    r"|age[ \t]+of))[ \t]+(?P<v>\d{1,3})\b" + self._NOT_A_QUANTITY,
                    0.55,
                    trigger=_words("age aged turn turned turns turning will i'll ill"),
                ),
                Rule(
                    "i-am",
                    r"(?i:(?:i[ \t]+am|i'm|he[ \t]+is|she[ \t]+is|he's|she's))[ \t]+(?P<v>\d{1,3})"
                    r"(?=[ \t]*(?:[.,!?;]|$|\band\b|\bnow\b))",
                    0.45,
                    trigger=_words("i i'm he she he's she's"),
                ),
            ],
            context=["old", "age", "aged", "birthday", "born", "years"],
            boost=0.2,
            before=6,
            after=3,
            name="TollhouseAgeRecognizer",
        )

    def check(self, rule: Rule, match: re.Match[str], score: float) -> float | None:
        """Plausible human ages only."""
        value = match.group("v")
        return score if value.isdigit() and 0 < int(value) <= 120 else None


class NrpRecognizer(ContextRegexRecognizer):
    """NRP: nationalities, peoples, faiths and political groups, in any letter case."""

    # Words that are also ordinary English words or languages: only when capitalised and
    # not tagged as a language by the NER model.
    AMBIGUOUS = frozenset(
        split_words(
            "polish christian liberal liberals conservative conservatives labour roma green "
            "party orthodox english french spanish german dutch italian russian chinese "
            "japanese greek turkish portuguese arabic swiss thai democrat democrats "
            "republican republicans jew asian"
        )
    )

    def __init__(self) -> None:
        self.lexicon = PhraseLexicon(plural_forms(NRP))
        super().__init__("NRP", [], name="TollhouseNrpRecognizer")

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
    ) -> list[RecognizerResult]:
        """Lexicon hits: ambiguous words only capitalised and not read as a language."""
        languages = []
        if nlp_artifacts is not None and nlp_artifacts.tokens is not None:
            languages = [
                (e.start_char, e.end_char)
                for e in nlp_artifacts.tokens.ents
                if e.label_ == "LANGUAGE"
            ]
        results = []
        for start, end in self.lexicon.find(text, text_words(text, nlp_artifacts)):
            if text[start:end].lower() in self.AMBIGUOUS and not text[start].isupper():
                continue
            if any(s <= start < e for s, e in languages):
                continue
            results.append(self.result(start, end, 0.6))
        return results


class NameCueRecognizer(ContextRegexRecognizer):
    """PERSON: names after a cue, and the speaker labels of a transcript."""

    _SPEAKER = re.compile(
        rf"(?m)^[ \t>]*(?P<v>{_NAME_WORD}(?:[ \t]+{_NAME_WORD})?)[ \t]*:[ \t]*(?=[\"'“\w])"
    )

    def __init__(self) -> None:
        super().__init__(
            "PERSON",
            [
                Rule(
                    "name-cue",
                    r"(?i:(?:my[ \t]+name[ \t]+is|name[ \t]+is|name[ \t]*[:?]|named|call(?:s|ed)?"
                    r"[ \t]+me|signed)[ \t]+)"
                    rf"(?P<v>{_ANYCASE_NAME}(?:[ \t]+{_ANYCASE_NAME}){{0,2}})",
                    0.6,
                    trigger=_words("my name named call calls called signed"),
                ),
                Rule(
                    "called",
                    rf"(?:called|named)[ \t]+(?P<v>{_NAME_WORD}(?:[ \t]+{_NAME_WORD}){{0,2}})",
                    0.5,
                    trigger=_words("called named"),
                ),
                Rule(
                    "signature",
                    r"(?i:(?:regards|sincerely|cheers|thanks|best|yours|love))[,!]?[ \t]*\n"
                    rf"[ \t]*(?P<v>{_NAME_WORD}(?:[ \t]+{_NAME_WORD}){{0,2}})[ \t]*(?=\n|$)",
                    0.6,
                    trigger=_words("regards sincerely cheers thanks best yours love"),
                ),
            ],
            name="TollhouseNameCueRecognizer",
        )

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
    ) -> list[RecognizerResult]:
        """Cued names, plus speaker labels when two lines or more start with one."""
        results = super().analyze(text, entities, nlp_artifacts)
        speakers = [
            m for m in self._SPEAKER.finditer(text) if m.group("v").lower() not in FIELD_LABELS
        ]
        if len(speakers) >= 2:
            results += [self.result(*m.span("v"), 0.6) for m in speakers]
        return results


class NameEchoRecognizer(ContextRegexRecognizer):
    """PERSON: the other mentions of a name the NER model found once ("Maclean").

    Texts name people in full once, then by first or last name; the model often sees
    only the full form. Each capitalised part of a PERSON entity is looked up elsewhere
    in the text, with the same capitalisation.
    """

    def __init__(self) -> None:
        super().__init__("PERSON", [], name="TollhouseNameEchoRecognizer")

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
    ) -> list[RecognizerResult]:
        """Whole-word repeats of the parts of the NER model's PERSON entities."""
        if nlp_artifacts is None or not nlp_artifacts.entities:
            return []
        people = [e for e in nlp_artifacts.entities if e.label_ == "PERSON"]
        if not people:
            return []
        parts = {
            word
            for person in people
            for word in WORD.findall(person.text)
            if len(word) > 2 and word[0].isupper() and word.lower() not in STOPWORDS
        }
        index = shared_index(text, nlp_artifacts)
        taken = [(p.start_char, p.end_char) for p in people]
        results = []
        for part in parts:
            for start in index.get(part.lower(), ()):
                end = start + len(part)
                if text[start:end] != part or any(s <= start < e for s, e in taken):
                    continue
                results.append(self.result(start, end, 0.6))
        return results


class OrganizationRecognizer(ContextRegexRecognizer):
    """ORGANIZATION: names ending in a company word, "A, B and C" firms, employers."""

    _WORD = rf"(?:{UPPER}[\w&'\u2019.-]*|\d+|&|and|of|the|de)"
    # The name before a company word: 1 to 4 words, the first capitalised or a number.
    _NAME_BEFORE = re.compile(
        rf"(?<![\w-])(?:{UPPER}[\w&'\u2019.-]*|\d+)(?:[ \t]+{_WORD}){{0,3}}[ \t]+\Z"
    )

    def __init__(self) -> None:
        self.suffixes = PhraseLexicon(ORG_SUFFIXES)
        super().__init__(
            "ORGANIZATION",
            [
                Rule(
                    "employer",
                    r"(?i:(?:works?|worked|working)[ \t]+(?:for|at)|employed[ \t]+(?:by|at)"
                    r"|joined|(?:is|am|are)[ \t]+from)[ \t]+"
                    rf"(?P<v>{_NAME_WORD}(?:[ \t]+(?:{_NAME_WORD}|&|and|of)){{0,3}}"
                    r"(?<![ \t]and)(?<![ \t]of))",
                    0.5,
                    trigger=_words("work works worked working employed joined is am are"),
                ),
                Rule(
                    "partnership",
                    rf"\b{_CAPITALISED},[ \t]+{_CAPITALISED},?[ \t]+(?:and|&)[ \t]+{_CAPITALISED}\b"
                    rf"|\b{_CAPITALISED}[ \t]+&[ \t]+{_CAPITALISED}\b",
                    0.5,
                ),
            ],
            name="TollhouseOrganizationRecognizer",
        )

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
    ) -> list[RecognizerResult]:
        """Partnerships, and names followed by a company word ("Smith Ltd.")."""
        results = super().analyze(text, entities, nlp_artifacts)
        for start, end in self.suffixes.find(text, text_words(text, nlp_artifacts)):
            window = text[max(0, start - 80) : start]
            name = self._NAME_BEFORE.search(window)
            if name is None:
                continue
            if end < len(text) and text[end] == "." and end - start <= 4:
                end += 1  # "Inc.", "Ltd.", "Co."
            results.append(self.result(start - len(window) + name.start(), end, 0.55))
        return results
