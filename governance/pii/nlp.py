"""The spaCy pipelines Presidio runs on: loaded from installed files only, never downloaded.

Presidio's own `SpacyNlpEngine.load` calls ``spacy.cli.download`` when a model is missing,
which would make start-up depend on the network (and hang in a sandbox). Here the pipeline
is loaded by us, from an installed package (``pii.model``) or a directory
(``pii.model_path``); anything missing stops start-up with a `ConfigError` naming the fix.

Imported lazily by `governance.pii.analyzer`, after the environment is prepared.
"""

from __future__ import annotations

import string
from contextlib import AbstractContextManager
from pathlib import Path

import spacy
from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
from spacy.language import Language
from spacy.tokens import Doc
from thinc.api import Model, NumpyOps

from governance.config.schema import PiiConfig
from governance.errors import ConfigError
from governance.pii.recognizers_base import WordsArtifacts

LANGUAGE = "en"

# Only named entities are used: the parser, tagger and lemmatizer are not loaded (no
# recognizer reads sentences, parts of speech or lemmas; context words are matched on the
# lower-cased text instead). In the en_core_web models NER has its own embedding layer,
# so its entities are identical without them (checked on all 1,500 records of the
# evaluation set), at less than half the time per text.
EXCLUDED_COMPONENTS = (
    "parser",
    "senter",
    "tagger",
    "morphologizer",
    "attribute_ruler",
    "lemmatizer",
    "trainable_lemmatizer",
)
# Shared embedding components, dropped when nothing that is loaded listens to them.
SHARED_EMBEDDINGS = ("tok2vec", "transformer")

# spaCy (OntoNotes) labels → Presidio entity types. FAC (buildings, airports, streets)
# and LOC (mountains, rivers, regions) are places as much as GPE (cities, countries) is.
ENTITY_MAPPING: dict[str, str] = {
    "PERSON": "PERSON",
    "PER": "PERSON",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "FAC": "LOCATION",
    "ORG": "ORGANIZATION",
    "NORP": "NRP",
    "DATE": "DATE_TIME",
    "TIME": "DATE_TIME",
}
# Labels that are not personal data on their own (amounts, events, works of art...).
IGNORED_LABELS = (
    "CARDINAL",
    "EVENT",
    "LANGUAGE",
    "LAW",
    "MONEY",
    "ORDINAL",
    "PERCENT",
    "PRODUCT",
    "QUANTITY",
    "WORK_OF_ART",
    "MISC",
)
# spaCy models give no per-entity confidence; this is what every NER finding scores.
NER_SCORE = 0.85


def load_pipeline(config: PiiConfig) -> Language:
    """The configured spaCy pipeline, or a blank English one for ``patterns_only``.

    Raises `ConfigError` when the model is neither an installed package nor a directory.
    """
    if config.patterns_only:
        return _warmed(spacy.blank(LANGUAGE))
    if config.model_path is not None:
        path = Path(config.model_path)
        if not (path / "config.cfg").is_file():
            raise ConfigError(
                f"pii.model_path: {config.model_path!r} is not a spaCy model directory "
                "(no config.cfg). Point it at an unpacked model, or remove it to use "
                f"the installed package pii.model={config.model!r}."
            )
        return _load(path, f"pii.model_path {config.model_path!r}")
    if not spacy.util.is_package(config.model):
        raise ConfigError(
            f"pii.model: the spaCy model package {config.model!r} is not installed, and "
            "Tollhouse never downloads models. Install it into this environment (e.g. "
            f"pip install the {config.model} wheel), set pii.model to an installed "
            "model, or set pii.model_path to a model directory."
        )
    return _load(config.model, f"pii.model {config.model!r}")


def _load(source: str | Path, what: str) -> Language:
    try:
        nlp = spacy.load(source, exclude=list(EXCLUDED_COMPONENTS))
    except (OSError, ValueError, ImportError) as exc:
        raise ConfigError(f"{what} could not be loaded: {exc}") from exc
    for name in SHARED_EMBEDDINGS:
        if name in nlp.pipe_names and not getattr(nlp.get_pipe(name), "listening_components", None):
            nlp.remove_pipe(name)
    _use_numpy_blas(nlp)
    if "ner" not in nlp.pipe_names:
        raise ConfigError(f"{what} has no 'ner' component: it cannot find names or places")
    return _warmed(nlp)


def _use_numpy_blas(nlp: Language) -> None:
    """Run the models' matrix products through numpy's BLAS rather than thinc's `blis`.

    On the small matrices of a single prompt, OpenBLAS (numpy's) takes about a quarter
    less time than blis for the same NER model; the entities are identical (checked on
    all 3,609 records of both evaluation sets). Models on a GPU are left alone.
    """
    ops = NumpyOps(use_blis=False)
    for _, component in nlp.pipeline:
        model = getattr(component, "model", None)
        if isinstance(model, Model):
            for node in model.walk():
                if isinstance(node.ops, NumpyOps):
                    node.ops = ops


def _warmed(nlp: Language) -> Language:
    """``nlp`` with the lexemes of the commonest tokens created once and for all.

    Analyses run in memory zones (see `LoadedSpacyNlpEngine.memory_zone`), which free
    what they create; without this, every analysis would re-create "the", ",", "I'm"...
    """
    words = set(nlp.Defaults.stop_words)
    words |= {w.capitalize() for w in words} | {w.upper() for w in words}
    words |= set(getattr(nlp.tokenizer, "rules", None) or {})
    words |= set(string.punctuation) | {str(n) for n in range(100)}
    nlp.make_doc(" ".join(sorted(words)))
    return nlp


class LoadedSpacyNlpEngine(SpacyNlpEngine):
    """Presidio's spaCy engine around a pipeline we loaded ourselves.

    `load` is a no-op on purpose: the parent's would re-load (and maybe download) by name.
    """

    def __init__(self, nlp: Language) -> None:
        super().__init__(
            models=[{"lang_code": LANGUAGE, "model_name": nlp.meta.get("name", "blank")}],
            ner_model_configuration=NerModelConfiguration(
                model_to_presidio_entity_mapping=dict(ENTITY_MAPPING),
                labels_to_ignore=list(IGNORED_LABELS),
                low_score_entity_names=[],
                default_score=NER_SCORE,
            ),
        )
        self.nlp: dict[str, Language] = {LANGUAGE: nlp}  # type: ignore[assignment]

    def load(self) -> None:
        """Nothing to do: the pipeline was loaded (without downloads) before."""

    def memory_zone(self) -> AbstractContextManager[None]:
        """Strings and lexemes first seen inside the zone are freed when it closes.

        A long-running process would otherwise keep every token it ever saw (personal
        data included) in the vocabulary, growing without bound. Nothing made from the
        pipeline's output may be used after the zone closes.
        """
        zone: AbstractContextManager[None] = self.nlp[LANGUAGE].memory_zone()
        return zone

    def process_text(self, text: str, language: str) -> WordsArtifacts:
        """Run the pipeline on ``text``; the artifacts keep the text for the recognizers."""
        return self._doc_to_nlp_artifact(self.nlp[language](text), language, text)

    def _doc_to_nlp_artifact(
        self, doc: Doc, language: str, text: str | None = None
    ) -> WordsArtifacts:
        """Presidio's artifacts (lemmas fall back to the lower-cased text), built lazily."""
        ents = list(doc.ents)
        entities, scores = self._get_updated_entities(ents, [NER_SCORE] * len(ents))
        return WordsArtifacts(
            text=doc.text if text is None else text,
            entities=entities,
            tokens=doc,
            nlp_engine=self,
            language=language,
            scores=scores,
        )

    def ner_entities(self) -> list[str]:
        """The Presidio entity types this pipeline's NER can produce (none when blank)."""
        if "ner" not in self.nlp[LANGUAGE].pipe_names:
            return []
        return sorted(set(ENTITY_MAPPING.values()))
