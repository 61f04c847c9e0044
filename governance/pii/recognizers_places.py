"""Where someone is: country and US-state names, and postal codes.

The NER model misses country names in upper or lower case and at the end of address
blocks; a gazetteer of the ~200 countries and 50 states does not. Postal codes are bare
digits most of the time, so they count after a US state code, in a distinctive national
format (UK, Canada), or next to a word like "zip" or "postcode".
"""

from __future__ import annotations

from presidio_analyzer import RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from governance.pii.recognizers_base import (
    ContextRegexRecognizer,
    PhraseLexicon,
    Rule,
    alternation,
    text_words,
)
from governance.pii.recognizers_lexicon import COUNTRIES, US_STATES, split_words

US_STATE_CODES = split_words(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV "
    "NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI"
)


class CountryRecognizer(ContextRegexRecognizer):
    """LOCATION: names of countries and US states, in any letter case."""

    # Also common words or first names: only when capitalised.
    AMBIGUOUS = frozenset(
        split_words(
            "chad turkey china guinea jordan georgia niger mali oman peru cuba jersey "
            "washington virginia indiana maine kent uk"
        )
    )

    def __init__(self) -> None:
        self.lexicon = PhraseLexicon(COUNTRIES | US_STATES)
        super().__init__("LOCATION", [], name="TollhouseCountryRecognizer")

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
    ) -> list[RecognizerResult]:
        """Gazetteer hits; ambiguous names count only when capitalised."""
        return [
            self.result(start, end, 0.6)
            for start, end in self.lexicon.find(text, text_words(text, nlp_artifacts))
            if text[start].isupper() or text[start:end].lower() not in self.AMBIGUOUS
        ]


class PostalCodeRecognizer(ContextRegexRecognizer):
    """ZIP_CODE: US ZIP codes after a state, UK and Canadian postcodes, codes near "zip"."""

    def __init__(self) -> None:
        states = alternation(US_STATE_CODES)
        super().__init__(
            "ZIP_CODE",
            [
                Rule(
                    "us-after-state", rf"\b(?:{states}),?[ \t]+(?P<v>\d{{5}}(?:-\d{{4}})?)\b", 0.6
                ),
                Rule(
                    "uk",
                    r"\b(?P<v>(?:[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]?)[ \t]?\d[ABD-HJLNP-UW-Z]{2})\b",
                    0.5,
                ),
                Rule(
                    "canada",
                    r"\b(?P<v>[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z][ \t]?"
                    r"\d[ABCEGHJ-NPRSTV-Z]\d)\b",
                    0.5,
                ),
                # Any national format, only next to a postcode word.
                Rule(
                    "near-word",
                    r"(?<![\w-])(?P<v>\d{3,5}(?:[ -]\d{2,4})?(?:[ \t]?[A-Z]{2})?)(?![\w-])",
                    0.2,
                    needs_context=True,
                ),
            ],
            context=["zip", "zipcode", "postal", "postcode", "post", "code", "plz", "cep", "pin"],
            boost=0.4,
            before=3,
            after=0,
            name="TollhousePostalCodeRecognizer",
        )
