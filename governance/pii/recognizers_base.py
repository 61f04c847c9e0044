"""The building blocks of Tollhouse's own recognizers: rules with context, and lexicons.

Presidio's context enhancer compares lemmas and skips spaCy stop words, and "call",
"name", "first" and "last" are stop words; so these recognizers look for their context
words themselves, in the few words around a match (whatever the NLP pipeline, including
the blank one of ``patterns_only``). Their results carry no Presidio context list, so the
enhancer leaves their scores alone.

Speed matters (every prompt goes through every recognizer), hence two devices: a rule
may name *trigger* words, and is then only tried, anchored, where one of them starts;
and lexicons are looked up word by word in a hash set rather than by a regex alternation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine
from spacy.tokens import Doc, Span

# Letter classes for `re` (which has no \p{...}): any letter, and upper-case letters of
# the Latin, Greek and Cyrillic scripts.
LETTER = r"[^\W\d_]"
UPPER = "[" + "".join(re.escape(chr(c)) for c in range(0x0530) if chr(c).isupper()) + "]"
# Words as triggers, lexicons and context see them: letters, inner apostrophes/hyphens.
WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
# How far (in characters) to look for context words; words further away never count.
_REACH = 60

Words = list[tuple[int, int, str]]


def words_of(text: str) -> Words:
    """(start, end, lower-cased word) for every word of ``text``."""
    return [(m.start(), m.end(), m.group().lower()) for m in WORD.finditer(text)]


class WordsArtifacts(NlpArtifacts):
    """Presidio's NLP artifacts, computed on demand, plus the text and its words.

    Presidio fills lemmas, token offsets and context keywords for every analysis; most
    analyses never need them (they serve context words of Presidio-style recognizers).
    The words (and where each starts) are shared by all the recognizers of an analysis.
    """

    def __init__(
        self,
        *,
        text: str,
        entities: list[Span],
        tokens: Doc,
        nlp_engine: NlpEngine,
        language: str,
        scores: list[float],
    ) -> None:
        # Not NlpArtifacts.__init__, which computes everything now.
        self.text = text
        self.entities = entities
        self.tokens = tokens
        self.nlp_engine = nlp_engine
        self.language = language
        self.scores = scores
        self._lazy: dict[str, list[Any]] = {}
        self._words: Words | None = None
        self._index: dict[str, list[int]] | None = None

    @property
    def tokens_indices(self) -> list[int]:  # type: ignore[override]
        """Where each token starts."""
        if "indices" not in self._lazy:
            self._lazy["indices"] = [token.idx for token in self.tokens]
        return self._lazy["indices"]

    @property
    def lemmas(self) -> list[str]:  # type: ignore[override]
        """Each token's lemma, or its lower-cased text when the pipeline has no lemmatizer."""
        if "lemmas" not in self._lazy:
            self._lazy["lemmas"] = [token.lemma_ or token.lower_ for token in self.tokens]
        return self._lazy["lemmas"]

    @property
    def keywords(self) -> list[str]:  # type: ignore[override]
        """Presidio's `set_keywords`, from the tokens' own stop-word and punctuation flags."""
        if "keywords" not in self._lazy:
            self._lazy["keywords"] = [
                part
                for token, lemma in zip(self.tokens, self.lemmas, strict=True)
                if not (token.is_stop or token.is_punct) and lemma.lower() not in ("-pron-", "be")
                for part in lemma.lower().split(":")
            ]
        return self._lazy["keywords"]

    @property
    def words(self) -> Words:
        """The words of the analysed text (see `words_of`)."""
        if self._words is None:
            self._words = words_of(self.text)
        return self._words

    @property
    def index(self) -> dict[str, list[int]]:
        """Where each word starts (see `index_of`)."""
        if self._index is None:
            self._index = index_of(self.words)
        return self._index


def index_of(words: Words) -> dict[str, list[int]]:
    """Start offsets of the words, by lower-cased word."""
    index: dict[str, list[int]] = {}
    for start, _, word in words:
        index.setdefault(word, []).append(start)
    return index


def shared(text: str, nlp_artifacts: NlpArtifacts | None) -> WordsArtifacts | None:
    """The artifacts, when they carry words and are this text's."""
    if isinstance(nlp_artifacts, WordsArtifacts) and (
        nlp_artifacts.text is text or nlp_artifacts.text == text
    ):
        return nlp_artifacts
    return None


def shared_index(text: str, nlp_artifacts: NlpArtifacts | None) -> dict[str, list[int]]:
    """Where each word of ``text`` starts, from the shared artifacts when they have it."""
    artifacts = shared(text, nlp_artifacts)
    return artifacts.index if artifacts is not None else index_of(words_of(text))


def text_words(text: str, nlp_artifacts: NlpArtifacts | None) -> Words:
    """The words of ``text``, from the shared artifacts when they are this text's."""
    artifacts = shared(text, nlp_artifacts)
    return artifacts.words if artifacts is not None else words_of(text)


@dataclass(frozen=True, slots=True)
class Rule:
    """One pattern: its match (or its named group ``v``) is an entity scoring ``score``.

    With ``trigger`` words (or word ``endings``) the pattern is only tried, anchored, where
    such a word starts; ``back`` (ending in ``\\Z``) must then match just before the match
    and is included in the entity. With ``needs_context`` the rule only runs on texts that
    contain one of the recognizer's context words.
    """

    name: str
    regex: str
    score: float
    flags: int = 0
    trigger: frozenset[str] = field(default_factory=frozenset)
    endings: tuple[str, ...] = ()
    back: str = ""
    needs_context: bool = False


def nearby_words(text: str, start: int, end: int, before: int, after: int) -> set[str]:
    """The lower-cased words among the ``before`` words before and ``after`` after a span."""
    left = WORD.findall(text[max(0, start - _REACH) : start].lower())
    right = WORD.findall(text[end : end + _REACH].lower())
    return set(left[-before:] if before else []) | set(right[:after])


class ContextRegexRecognizer(LocalRecognizer):
    """Rules for one entity type; a context word near a match adds ``boost`` to its score.

    Subclasses refine matches in `check` (validate, re-score or drop them).
    """

    name: str

    def __init__(
        self,
        entity: str,
        rules: Sequence[Rule],
        *,
        context: Iterable[str] = (),
        boost: float = 0.35,
        before: int = 4,
        after: int = 1,
        name: str | None = None,
    ) -> None:
        self.rules = tuple(rules)
        self.compiled = tuple(re.compile(r.regex, r.flags) for r in self.rules)
        self.backs = tuple(re.compile(r.back, r.flags) if r.back else None for r in self.rules)
        self.context_words = frozenset(w.lower() for w in context)
        self.boost = boost
        self.before = before
        self.after = after
        super().__init__(supported_entities=[entity], name=name or type(self).__name__)

    def load(self) -> None:
        """Nothing to load: patterns are compiled in the constructor."""

    def check(self, rule: Rule, match: re.Match[str], score: float) -> float | None:
        """The score of a match, or None to drop it. Default: keep the rule's score."""
        return score

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
    ) -> list[RecognizerResult]:
        """Every match of every rule, checked and context-boosted."""
        results: list[RecognizerResult] = []
        artifacts = shared(text, nlp_artifacts)
        words = artifacts.words if artifacts is not None else words_of(text)
        index = artifacts.index if artifacts is not None else index_of(words)
        for rule, pattern, back in zip(self.rules, self.compiled, self.backs, strict=True):
            if rule.needs_context and self.context_words.isdisjoint(index):
                continue
            group = "v" if "v" in pattern.groupindex else 0
            for match in _matches(pattern, text, rule, words, index):
                start, end = match.span(group)
                if back is not None:
                    before = back.search(text, max(0, start - 80), start)
                    if before is None:
                        continue
                    start = before.start()
                if start >= end:
                    continue
                score = self.check(rule, match, rule.score)
                if score is None:
                    continue
                if self.has_context(text, start, end):
                    score += self.boost
                results.append(self.result(start, end, score))
        return results

    def has_context(self, text: str, start: int, end: int) -> bool:
        """Whether one of this recognizer's context words is near ``text[start:end]``."""
        if not self.context_words:
            return False
        return not self.context_words.isdisjoint(
            nearby_words(text, start, end, self.before, self.after)
        )

    def result(self, start: int, end: int, score: float) -> RecognizerResult:
        """A Presidio result of this recognizer (score capped at 1)."""
        return RecognizerResult(
            entity_type=self.supported_entities[0],
            start=start,
            end=end,
            score=round(min(score, 1.0), 4),
            recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
            },
        )


def _matches(
    pattern: re.Pattern[str],
    text: str,
    rule: Rule,
    words: Words,
    index: dict[str, list[int]],
) -> Iterable[re.Match[str]]:
    """Matches of ``rule``: everywhere, or anchored where its trigger words start."""
    if not (rule.trigger or rule.endings):
        return pattern.finditer(text)
    starts: Iterable[int]
    if rule.endings:
        starts = [s for s, e, w in words if e - s > 6 and w.endswith(rule.endings)]
    else:
        starts = [start for w in rule.trigger for start in index.get(w, ())]
    anchored = (pattern.match(text, start) for start in starts)
    return (m for m in anchored if m is not None)


class PhraseLexicon:
    """Case-insensitive whole-word lookup of phrases of one or more words."""

    def __init__(self, phrases: Iterable[str]) -> None:
        self.phrases: frozenset[tuple[str, ...]] = frozenset(
            tuple(w for _, _, w in words_of(p)) for p in phrases
        )
        lengths: dict[str, set[int]] = {}
        for phrase in self.phrases:
            if phrase:
                lengths.setdefault(phrase[0], set()).add(len(phrase))
        self._lengths = {k: sorted(v, reverse=True) for k, v in lengths.items()}

    def find(self, text: str, words: Words) -> list[tuple[int, int]]:
        """Spans of the longest phrases found in ``words`` of ``text``, not overlapping."""
        found: list[tuple[int, int]] = []
        i = 0
        while i < len(words):
            for n in self._lengths.get(words[i][2], ()):
                chunk = words[i : i + n]
                if (
                    len(chunk) == n
                    and self._joined(text, chunk)
                    and (tuple(w for _, _, w in chunk) in self.phrases)
                ):
                    found.append((chunk[0][0], chunk[-1][1]))
                    i += n - 1
                    break
            i += 1
        return found

    @staticmethod
    def _joined(text: str, chunk: Words) -> bool:
        """Words of a phrase are apart by blanks or dots only ("New  Zealand", "U.S.A")."""
        return all(
            not text[a[1] : b[0]].strip(" \t.") and "\n" not in text[a[1] : b[0]]
            for a, b in pairwise(chunk)
        )


def alternation(words: Iterable[str]) -> str:
    """A regex alternation of ``words`` (escaped, longest first so prefixes do not win)."""
    return "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))
