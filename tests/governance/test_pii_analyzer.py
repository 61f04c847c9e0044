"""The Presidio analyzer, for real: the installed spaCy model, no network, no mocks.

The default-model analyzer is the suite's session fixture (``analyzer`` in conftest);
the patterns-only one is built here once. All values are synthetic: example.com
addresses, SSNs in the never-issued 9xx area, test card and IBAN numbers, 555 numbers.
(The famous specimen SSN 078-05-1120 is deliberately ignored by Presidio.)
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from governance.config.schema import PiiConfig
from governance.errors import ConfigError
from governance.pii.analyzer import (
    SCORE_FLOOR,
    SUFFIX_LIST_URLS_ENV,
    PresidioAnalyzer,
    build_analyzer,
    build_custom_recognizers,
)
from governance.pii.findings import Finding, TextAnalyzer
from governance.policy.schema import PatternSpec, RecognizerSpec


def spans(text: str, findings: Sequence[Finding], threshold: float = 0.5) -> set[tuple[str, str]]:
    """(entity type, covered text) of the findings a policy at ``threshold`` would act on."""
    return {(f.entity_type, text[f.start : f.end]) for f in findings if f.score >= threshold}


def of_type(entity_type: str, findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.entity_type == entity_type]


@pytest.fixture(scope="module")
def patterns_only() -> PresidioAnalyzer:
    return build_analyzer(PiiConfig(patterns_only=True, threads=1))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any attempt to open a connection fails loudly instead of hanging."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


def test_finds_structured_identifiers(analyzer: TextAnalyzer) -> None:
    text = (
        "Mail jane.doe@example.com, SSN 923-45-6781, card 4111 1111 1111 1111, "
        "IBAN GB82 WEST 1234 5698 7654 32, call +1 202-555-0143 or (020) 7946 0958."
    )
    found = spans(text, analyzer.analyze(text))
    assert {
        ("EMAIL_ADDRESS", "jane.doe@example.com"),
        ("US_SSN", "923-45-6781"),
        ("CREDIT_CARD", "4111 1111 1111 1111"),
        ("IBAN_CODE", "GB82 WEST 1234 5698 7654 32"),
        ("PHONE_NUMBER", "+1 202-555-0143"),
        ("PHONE_NUMBER", "(020) 7946 0958"),
    } <= found


def test_finds_people_places_and_addresses(analyzer: TextAnalyzer) -> None:
    text = "Dr. John Smith moved from Canada to 221B Baker Street, Apt. 4, London NW1 6XE."
    found = spans(text, analyzer.analyze(text))
    assert ("PERSON", "John Smith") in found
    assert ("TITLE", "Dr.") in found
    assert ("LOCATION", "Canada") in found
    assert any(t == "STREET_ADDRESS" and "221B Baker Street" in v for t, v in found)
    assert ("ZIP_CODE", "NW1 6XE") in found


def test_findings_are_sorted_and_scored(analyzer: TextAnalyzer) -> None:
    text = "Call Jane Doe on 202-555-0143; Jane Doe lives at 12 Main Street, Springfield."
    findings = analyzer.analyze(text)
    assert findings
    assert list(findings) == sorted(findings, key=lambda f: (f.start, -f.end, f.entity_type))
    assert all(SCORE_FLOOR <= f.score <= 1.0 for f in findings)
    assert all(0 <= f.start < f.end <= len(text) for f in findings)
    assert len(set(findings)) == len(findings)


def test_vague_dates_and_plain_text_are_not_pii(analyzer: TextAnalyzer) -> None:
    text = "Last month we shipped the release; years ago nobody cared about version 1.2."
    assert spans(text, analyzer.analyze(text)) == set()
    assert list(analyzer.analyze("")) == []


def test_custom_pattern_is_boosted_by_context(analyzer: TextAnalyzer) -> None:
    custom = build_custom_recognizers(
        [
            RecognizerSpec(
                name="employee-id",
                entity="EMPLOYEE_ID",
                patterns=[PatternSpec(regex=r"\bEMP-\d{6}\b", score=0.4)],
                context=["employee"],
            )
        ]
    )
    assert custom.entities == frozenset({"EMPLOYEE_ID"})
    with_context = "The employee badge says EMP-123456."
    without = "Reference EMP-654321 is attached."
    lowercase = "The employee badge says emp-123456."
    [boosted] = [
        f for f in analyzer.analyze(with_context, custom) if f.entity_type == "EMPLOYEE_ID"
    ]
    [plain] = [f for f in analyzer.analyze(without, custom) if f.entity_type == "EMPLOYEE_ID"]
    assert with_context[boosted.start : boosted.end] == "EMP-123456"
    assert boosted.score == pytest.approx(0.75)
    assert plain.score == pytest.approx(0.4)
    # Patterns match as written: no silent case-insensitivity.
    assert not of_type("EMPLOYEE_ID", analyzer.analyze(lowercase, custom))
    # Without the policy's recognizers, nothing of the kind is found.
    assert not of_type("EMPLOYEE_ID", analyzer.analyze(with_context))


def test_custom_deny_list_matches_whole_words_any_case(analyzer: TextAnalyzer) -> None:
    custom = build_custom_recognizers(
        [RecognizerSpec(name="codenames", entity="CODENAME", deny_list=["Project Bluebird"])]
    )
    text = "Status of project bluebird? Not Project Bluebirds, nor XProject Bluebird."
    found = of_type("CODENAME", analyzer.analyze(text, custom))
    assert [(text[f.start : f.end], f.score) for f in found] == [("project bluebird", 1.0)]


def test_custom_recognizers_must_come_from_the_builder(analyzer: TextAnalyzer) -> None:
    class Foreign:
        entities = frozenset({"X"})

    with pytest.raises(TypeError):
        analyzer.analyze("text", Foreign())


def test_missing_model_is_a_config_error_not_a_download(no_network: None) -> None:
    with pytest.raises(ConfigError) as error:
        build_analyzer(PiiConfig(model="en_core_web_nonexistent_xx"))
    message = str(error.value)
    assert "en_core_web_nonexistent_xx" in message
    assert "pii.model_path" in message
    assert "never downloads" in message


def test_model_path_without_a_model_is_a_config_error(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(ConfigError, match=r"pii\.model_path"):
        build_analyzer(PiiConfig(model_path=str(tmp_path)))


def test_patterns_only_finds_identifiers_without_ner(
    patterns_only: PresidioAnalyzer, no_network: None
) -> None:
    text = "Jane Doe: jane@example.com, +44 20 7946 0958, 923-45-6781, https://example.org/x"
    found = spans(text, patterns_only.analyze(text))
    assert {
        ("EMAIL_ADDRESS", "jane@example.com"),
        ("PHONE_NUMBER", "+44 20 7946 0958"),
        ("US_SSN", "923-45-6781"),
        ("URL", "https://example.org/x"),
    } <= found
    assert not any(t == "PERSON" for t, _ in found)  # names need the NER model


def test_nothing_reaches_for_the_network(patterns_only: PresidioAnalyzer, no_network: None) -> None:
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    from governance.pii.recognizers_builtin import OFFLINE_TLDS

    # tldextract is told to use its bundled suffix list, never to fetch or cache one ...
    assert os.environ[SUFFIX_LIST_URLS_ENV] == ""
    assert OFFLINE_TLDS.suffix_list_urls == ()
    assert OFFLINE_TLDS.fallback_to_snapshot
    # ... and Presidio's e-mail recognizer, which uses tldextract's global extractor, is
    # not among the recognizers (ours validates with the offline one above).
    assert not any(isinstance(r, EmailRecognizer) for r in patterns_only.recognizers)
    text = "Write to a.b@example.co.uk or see www.example.com.au"
    assert ("EMAIL_ADDRESS", "a.b@example.co.uk") in spans(text, patterns_only.analyze(text))


def test_concurrent_analyses_agree_with_sequential_ones(analyzer: TextAnalyzer) -> None:
    texts = [
        f"Patient {name} (born 12/03/19{60 + i}) can be reached at {name.lower()}@example.com "
        f"or 202-555-01{i:02d}; address {i + 10} Elm Street, Apt. {i}."
        for i, name in enumerate(["Alice Martin", "Bob Stone", "Carol White", "Dan Brown"] * 3)
    ]
    sequential = [list(analyzer.analyze(t)) for t in texts]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda t: list(analyzer.analyze(t)), texts))
    assert concurrent == sequential
