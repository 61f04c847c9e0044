"""PII analysis with Presidio: one engine per process, built at start-up, safe across threads.

`build_analyzer` turns the ``pii`` section of the configuration into a `PresidioAnalyzer`
(the `TextAnalyzer` the pipeline uses); `build_custom_recognizers` turns a policy's
``recognizers`` section into the ad-hoc recognizers `PresidioAnalyzer.analyze` also runs.

Nothing here downloads anything (invariant 7): the spaCy model comes from an installed
package or a directory (`governance.pii.nlp`), and tldextract (imported by Presidio,
used to validate e-mail and domain suffixes) is told to use its bundled public-suffix
snapshot before it is imported; Presidio is therefore imported lazily, inside the
builders. Tollhouse's own recognizers use a private offline extractor besides.
"""

from __future__ import annotations

import importlib
import os
import queue
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from governance.config.schema import PiiConfig
from governance.errors import ConfigError
from governance.pii.findings import CustomRecognizers, Finding
from governance.policy.schema import RecognizerSpec

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerResult

    from governance.pii.nlp import LoadedSpacyNlpEngine

# Findings below this are noise at any sensible policy threshold; the caller applies the
# per-entity thresholds of the policy to what is left.
SCORE_FLOOR = 0.3
# Newline-separated public-suffix-list URLs for tldextract; empty means "no URL: use the
# snapshot bundled with the package" (its default is to fetch publicsuffix.org).
SUFFIX_LIST_URLS_ENV = "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"
# Score of a policy deny-list hit: the policy author listed that exact term.
DENY_LIST_SCORE = 1.0
# numpy's BLAS runs the NER model's matrix products; one thread each, because analyses
# already run in parallel (``pii.threads``) and a pool per call would only contend.
BLAS_THREADS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def prepare_environment() -> None:
    """Make the libraries Presidio imports offline-only; call before importing Presidio.

    Also caps BLAS threads at one unless the operator set them (read when numpy loads).
    """
    os.environ[SUFFIX_LIST_URLS_ENV] = ""
    for name in BLAS_THREADS_ENV:
        os.environ.setdefault(name, "1")


@dataclass(frozen=True, slots=True)
class PresidioCustomRecognizers:
    """A policy's own recognizers, ready to run: built once per policy version."""

    recognizers: tuple[EntityRecognizer, ...]
    entities: frozenset[str]


class PresidioAnalyzer:
    """The `TextAnalyzer` of Tollhouse: Presidio with the recognizers of `recognizers`.

    spaCy pipelines are not documented as safe to call from several threads at once, so
    each analysis borrows one of ``len(nlp_engines)`` independent pipelines (one per
    analysis thread); the Presidio recognizers themselves are stateless once built.
    """

    def __init__(
        self,
        engine: AnalyzerEngine,
        nlp_engines: Sequence[LoadedSpacyNlpEngine],
        *,
        score_floor: float = SCORE_FLOOR,
    ) -> None:
        if not nlp_engines:
            raise ValueError("PresidioAnalyzer needs at least one NLP engine")
        self._engine = engine
        self._score_floor = score_floor
        self._pool: queue.SimpleQueue[LoadedSpacyNlpEngine] = queue.SimpleQueue()
        for nlp_engine in nlp_engines:
            self._pool.put(nlp_engine)
        self.entities: frozenset[str] = frozenset(engine.get_supported_entities("en"))

    @property
    def recognizers(self) -> tuple[EntityRecognizer, ...]:
        """The built-in recognizers every analysis runs (policy ones come per call)."""
        return tuple(self._engine.registry.recognizers)

    def analyze(self, text: str, custom: CustomRecognizers | None = None) -> list[Finding]:
        """Every entity scoring at least the floor, sorted by position (see `to_findings`).

        Findings may overlap (a LOCATION inside a STREET_ADDRESS, two readings of one
        number): the redactor resolves overlaps among the findings it acts on, after
        applying the policy's per-entity thresholds.
        """
        if custom is not None and not isinstance(custom, PresidioCustomRecognizers):
            raise TypeError("custom recognizers must come from build_custom_recognizers")
        ad_hoc = list(custom.recognizers) if custom is not None else []
        with self._borrow() as nlp_engine, nlp_engine.memory_zone():
            artifacts = nlp_engine.process_text(text, "en")
            results = self._engine.analyze(
                text=text,
                language="en",
                nlp_artifacts=artifacts,
                ad_hoc_recognizers=ad_hoc or None,
                score_threshold=self._score_floor,
            )
            return to_findings(results)

    @contextmanager
    def _borrow(self) -> Iterator[LoadedSpacyNlpEngine]:
        nlp_engine = self._pool.get()
        try:
            yield nlp_engine
        finally:
            self._pool.put(nlp_engine)


def to_findings(results: Sequence[RecognizerResult]) -> list[Finding]:
    """Presidio's results as findings, sorted by (start, -end, type).

    Presidio has already dropped results contained in a better-scored one of the same
    type; partial overlaps are kept as found (not merged: a low-scoring span merged into
    a high-scoring one would be masked at the high score).
    """
    findings = [
        Finding(r.entity_type, r.start, r.end, float(r.score)) for r in results if r.end > r.start
    ]
    return sorted(findings, key=lambda f: (f.start, -f.end, f.entity_type))


def build_analyzer(config: PiiConfig) -> PresidioAnalyzer:
    """The process's analyzer, per the ``pii`` configuration (takes seconds: do it once).

    Raises `ConfigError` when the configured spaCy model is not installed or not a model.
    """
    prepare_environment()
    from presidio_analyzer import RecognizerRegistry

    from governance.pii import nlp, recognizers
    from governance.pii.nlp_context import TollhouseAnalyzerEngine, WindowContextEnhancer

    with warnings.catch_warnings():
        # Loading models and recognizers may warn about things that do not apply here
        # (e.g. a model built by a neighbouring spaCy patch release); they are not errors.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        nlp_engines = [
            nlp.LoadedSpacyNlpEngine(nlp.load_pipeline(config)) for _ in range(config.threads)
        ]
        registry = RecognizerRegistry(
            recognizers=recognizers.default_recognizers(nlp_engines[0]),
            supported_languages=["en"],
        )
        engine = TollhouseAnalyzerEngine(
            registry=registry,
            nlp_engine=nlp_engines[0],
            supported_languages=["en"],
            context_aware_enhancer=WindowContextEnhancer(
                context_similarity_factor=recognizers.CONTEXT_BOOST,
                min_score_with_context_similarity=recognizers.MIN_SCORE_WITH_CONTEXT,
                context_prefix_count=recognizers.CONTEXT_WINDOW_BEFORE,
                context_suffix_count=recognizers.CONTEXT_WINDOW_AFTER,
                context_matching_mode="substring",
            ),
        )
    analyzer = PresidioAnalyzer(engine, nlp_engines)
    # One pass per pipeline loads lazy state (compiled patterns, caches) before traffic.
    for _ in nlp_engines:
        analyzer.analyze(recognizers.WARM_UP_TEXT)
    return analyzer


def build_custom_recognizers(specs: Sequence[RecognizerSpec]) -> PresidioCustomRecognizers:
    """A policy's ``recognizers`` as Presidio ad-hoc recognizers, compiled now.

    Patterns keep their policy score, match as written (case-sensitive unless they say
    ``(?i)``), and are boosted like the built-in ones when one of the spec's context
    words is near. Deny-list terms match as whole words, in any letter case.
    Raises `ConfigError` naming the recognizer if a pattern does not compile.
    """
    prepare_environment()
    from presidio_analyzer import Pattern, PatternRecognizer

    # Presidio compiles with the `regex` package (no type stubs): its error class.
    regex_error: type[Exception] = importlib.import_module("regex").error

    built: list[EntityRecognizer] = []
    for spec in specs:
        parts: list[PatternRecognizer] = []
        if spec.patterns:
            patterns = [
                Pattern(name=f"{spec.name}[{i}]", regex=p.regex, score=p.score)
                for i, p in enumerate(spec.patterns)
            ]
            parts.append(
                PatternRecognizer(
                    supported_entity=spec.entity,
                    name=f"policy:{spec.name}",
                    patterns=patterns,
                    context=list(spec.context),
                    global_regex_flags=re.DOTALL | re.MULTILINE,
                )
            )
        if spec.deny_list:
            parts.append(
                PatternRecognizer(
                    supported_entity=spec.entity,
                    name=f"policy:{spec.name}:deny-list",
                    deny_list=list(spec.deny_list),
                    deny_list_score=DENY_LIST_SCORE,
                )
            )
        for part in parts:
            try:
                part.analyze("", entities=[spec.entity])  # compiles the patterns now
            except regex_error as exc:
                raise ConfigError(
                    f"policy recognizer {spec.name!r}: a pattern does not compile: {exc}"
                ) from exc
        built.extend(parts)
    return PresidioCustomRecognizers(
        recognizers=tuple(built), entities=frozenset(spec.entity for spec in specs)
    )
