"""Presidio's context enhancement, with the same rules and without its hot spots.

`LemmaContextAwareEnhancer` deep-copies every result on every call and finds each
result's token with a linear scan, which together cost more than the NER model on long
prompts. This subclass keeps its semantics (a recognizer context word among the N words
before or M after a result raises its score by a factor, up to a floor and a cap) but
updates the per-call results in place and finds tokens by bisection.
"""

from __future__ import annotations

from bisect import bisect_right

from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerResult
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts

_ID = RecognizerResult.RECOGNIZER_IDENTIFIER_KEY
_ENHANCED = RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY


class WindowContextEnhancer(LemmaContextAwareEnhancer):
    """Context words near a result (by lemma, or lower-cased text without a lemmatizer)."""

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[RecognizerResult],
        nlp_artifacts: NlpArtifacts,
        recognizers: list[EntityRecognizer],
        context: list[str] | None = None,
    ) -> list[RecognizerResult]:
        """Raise, in place, the score of results with a supporting word nearby."""
        with_context = {r.id: r for r in recognizers if r.context}
        if not with_context or nlp_artifacts is None or not nlp_artifacts.tokens:
            return raw_results
        extra = [word.lower() for word in context or []]
        keywords: frozenset[str] | None = None
        lemmas: list[str] = []
        starts: list[int] = nlp_artifacts.tokens_indices
        for result in raw_results:
            metadata = result.recognition_metadata or {}
            recognizer = with_context.get(metadata.get(_ID))
            if recognizer is None or metadata.get(_ENHANCED):
                continue
            if keywords is None:  # only now: most texts need no context lookup at all
                keywords = frozenset(nlp_artifacts.keywords)
                lemmas = [lemma.lower() for lemma in nlp_artifacts.lemmas]
            index = max(bisect_right(starts, result.start) - 1, 0)
            words = self._window(index, lemmas, keywords) + extra
            supporting = self._find_supportive_word_in_context(
                words, recognizer.context, self.context_matching_mode
            )
            if not supporting:
                continue
            score = max(
                result.score + self.context_similarity_factor,
                self.min_score_with_context_similarity,
            )
            result.score = min(score, self.MAX_SCORE)
            if result.analysis_explanation is not None:
                result.analysis_explanation.set_supportive_context_word(supporting)
                result.analysis_explanation.set_improved_score(result.score)
        return raw_results

    def _window(self, index: int, lemmas: list[str], keywords: frozenset[str]) -> list[str]:
        """Keywords among the N before (and M after) token ``index``, itself included."""
        words: list[str] = []
        for step, count in ((-1, self.context_prefix_count), (1, self.context_suffix_count)):
            i, remaining = index, count + 1
            while 0 <= i < len(lemmas) and remaining > 0:
                if lemmas[i] in keywords:
                    words.append(lemmas[i])
                    remaining -= 1
                i += step
        return words


class TollhouseAnalyzerEngine(AnalyzerEngine):
    """Presidio's engine, skipping the per-recognizer context hook nobody overrides.

    `AnalyzerEngine._enhance_using_context` first offers every recognizer its own results
    (filtering all results once per recognizer), a hook no built-in recognizer implements;
    this keeps that step only for recognizers that do override it.
    """

    def _enhance_using_context(
        self,
        text: str,
        raw_results: list[RecognizerResult],
        nlp_artifacts: NlpArtifacts,
        recognizers: list[EntityRecognizer],
        context: list[str] | None = None,
    ) -> list[RecognizerResult]:
        hooked = [
            r
            for r in recognizers
            if type(r).enhance_using_context is not EntityRecognizer.enhance_using_context
        ]
        if hooked:
            return list(
                super()._enhance_using_context(
                    text, raw_results, nlp_artifacts, recognizers, context
                )
            )
        return list(
            self.context_aware_enhancer.enhance_using_context(
                text=text,
                raw_results=raw_results,
                nlp_artifacts=nlp_artifacts,
                recognizers=recognizers,
                context=context,
            )
        )
