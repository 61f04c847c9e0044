"""PII handling through the proxy, with upstreams that record exactly what they received.

alpha is an internal upstream and beta an external one. The policy pseudonymises names
and e-mail addresses for external models, masks everything else it finds, refuses card
numbers externally, and routes requests with an SSN or medical record number to the
internal alias. All personal data here is synthetic.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import openai
import pytest

from governance.pii import CustomRecognizers, Finding, TextAnalyzer
from tests.proxy.conftest import Harness, running_proxy
from tests.upstream.faulty import Fault, FaultyUpstream

NAME = "Maria Jansen"
EMAIL = "maria.jansen@example.com"
PHONE = "+1 212-555-0147"
IP = "192.0.2.45"
SSN = "536-22-1847"
CARD = "4111 1111 1111 1111"
EMPLOYEE = "EMP-123456"

PII_POLICY: dict[str, Any] = {
    "name": "pii-suite",
    "defaults": {
        "audit": {"content": "redacted"},
        "pii": {
            "default": {"internal": "allow", "external": "mask"},
            "entities": {
                "PERSON": {"internal": "allow", "external": "pseudonymize"},
                "EMAIL_ADDRESS": {"internal": "allow", "external": "pseudonymize"},
                "CREDIT_CARD": {"internal": "allow", "external": "block"},
            },
        },
        "routes": [
            {
                "name": "sensitive-to-internal",
                "when_entities": ["US_SSN", "MEDICAL_RECORD_NUMBER"],
                "route_to": "chat-internal",
            }
        ],
        "content": {"max_tokens": 512, "secrets": "block", "blocked_keywords": ["nightjar"]},
    },
    "overrides": [
        {
            "name": "quiet-answers-masked",
            "match": {"apps": ["quiet"]},
            "rules": {"response": {"mask_entities": ["EMAIL_ADDRESS", "PERSON"]}},
        }
    ],
    "recognizers": [
        {
            "name": "employee-id",
            "entity": "EMPLOYEE_ID",
            "patterns": [{"regex": r"\bEMP-\d{6}\b", "score": 0.6}],
            "context": ["employee", "staff"],
        }
    ],
}


def _hybrid_config(alpha: FaultyUpstream, beta: FaultyUpstream) -> dict[str, Any]:
    common = {"kind": "openai_compatible", "timeout_s": 2.0, "connect_timeout_s": 1.0}
    deploy = {"model": "demo-llama"}
    return {
        "upstreams": [
            {"name": "alpha", "base_url": alpha.url, "destination": "internal", **common},
            {"name": "beta", "base_url": beta.url, "destination": "external", **common},
        ],
        "models": [
            {"name": "chat-internal", "deployments": [{"upstream": "alpha", **deploy}]},
            {"name": "chat-external", "deployments": [{"upstream": "beta", **deploy}]},
            {
                "name": "chat-hybrid",
                "deployments": [
                    {"upstream": "beta", "weight": 1, **deploy},
                    {"upstream": "alpha", "weight": 0, **deploy},
                ],
            },
        ],
    }


@pytest.fixture(scope="module")
def hybrid(
    database_url: str, upstreams: tuple[FaultyUpstream, FaultyUpstream], analyzer: TextAnalyzer
) -> Iterator[Harness]:
    config = _hybrid_config(*upstreams)
    with running_proxy(database_url, upstreams, analyzer, policy=PII_POLICY, **config) as running:
        yield running


@pytest.fixture
def pii(hybrid: Harness) -> Harness:
    hybrid.alpha.reset()
    hybrid.beta.reset()
    return hybrid


def _sent(upstream: FaultyUpstream) -> str:
    return json.dumps([r["body"] for r in upstream.received], ensure_ascii=False)


def _assert_absent(text: str, *values: str) -> None:
    for value in values:
        assert value not in text, f"{value!r} leaked"


def test_no_planted_value_reaches_an_external_upstream(pii: Harness) -> None:
    messages: Any = [
        {"role": "system", "content": f"You assist {NAME} ({EMAIL})."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": f"Call me on {PHONE}."},
                {"type": "text", "text": f"My laptop is at {IP}."},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": json.dumps({"who": NAME})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": f"Found {EMAIL} for {NAME}."},
        {"role": "user", "content": f"Please write to {NAME} at {EMAIL}."},
    ]
    answer = pii.client().chat.completions.create(model="chat-external", messages=messages)
    sent = _sent(pii.beta)
    _assert_absent(sent, NAME, EMAIL, PHONE, IP, "Jansen")
    assert "<PERSON_1>" in sent and "<EMAIL_ADDRESS_1>" in sent
    assert "<PHONE_NUMBER>" in sent
    # The same value got the same placeholder in every place it appeared.
    assert sent.count("<PERSON_1>") == 4
    assert pii.alpha.received == []
    # The demo model echoes the last message; the caller gets the originals back.
    content = answer.choices[0].message.content or ""
    assert f"Please write to {NAME} at {EMAIL}." in content
    assert "<PERSON_" not in content


def test_embeddings_and_completions_inputs_are_covered(pii: Harness) -> None:
    client = pii.client()
    client.embeddings.create(model="chat-external", input=[f"{NAME} lives here", "nothing"])
    client.completions.create(model="chat-external", prompt=f"Dear {NAME}, your IP is {IP}")
    sent = _sent(pii.beta)
    _assert_absent(sent, NAME, IP)
    assert "nothing" in sent  # unchanged text is passed through


def test_streamed_answer_restores_placeholders_split_over_chunks(pii: Harness) -> None:
    pii.beta.inject(Fault("fine_pieces"))
    stream = pii.client().chat.completions.create(
        model="chat-external",
        messages=[{"role": "user", "content": f"Tell {NAME} that {EMAIL} works."}],
        stream=True,
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    text = "".join(pieces)
    assert f"Tell {NAME} that {EMAIL} works." in text
    assert "<" not in text
    # The upstream really split the placeholders: 3-character chunks.
    sent = _sent(pii.beta)
    _assert_absent(sent, NAME, EMAIL)
    assert sum(1 for p in pieces if p) > 20


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
def test_pseudonyms_restored_inside_tool_call_arguments(pii: Harness, stream: bool) -> None:
    pii.beta.inject(Fault("echo_tool"))
    tools: Any = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    request = {
        "model": "chat-external",
        "messages": [{"role": "user", "content": f'Look up "{NAME}" <{EMAIL}>'}],
        "tools": tools,
    }
    client = pii.client()
    if stream:
        arguments = ""
        for chunk in client.chat.completions.create(**request, stream=True):
            for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                arguments += (call.function.arguments or "") if call.function else ""
    else:
        answer = client.chat.completions.create(**request)
        calls = answer.choices[0].message.tool_calls or []
        arguments = calls[0].function.arguments  # type: ignore[union-attr]
    assert json.loads(arguments) == {"echo": f'Look up "{NAME}" <{EMAIL}>'}
    _assert_absent(_sent(pii.beta), NAME, EMAIL)


def test_ssn_routes_to_the_internal_alias(pii: Harness) -> None:
    response = pii.client().chat.completions.with_raw_response.create(
        model="chat-external",
        messages=[{"role": "user", "content": f"My SSN is {SSN}, can you file it?"}],
    )
    assert response.parse().choices[0].message.content
    assert pii.beta.received == []
    assert SSN in _sent(pii.alpha)  # internal may see it: the policy allows that
    records = pii.records(response.headers["x-request-id"])
    admitted, completed = records
    assert admitted.decision is not None
    assert admitted.decision["action"] == "route"
    assert admitted.decision["model"] == "chat-internal"
    assert "routes.sensitive-to-internal" in admitted.decision["rules"]
    assert admitted.decision["pii"]["US_SSN"] == 1
    assert completed.destination == "internal" and completed.upstream == "alpha"


def test_blocked_entity_is_refused_in_openai_format(pii: Harness) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        pii.client().chat.completions.create(
            model="chat-external",
            messages=[{"role": "user", "content": f"Charge {CARD} please."}],
        )
    error = caught.value
    assert error.status_code == 400
    assert error.code == "pii_blocked"
    assert "CREDIT_CARD" in error.message and CARD not in error.message
    assert pii.beta.received == [] and pii.alpha.received == []
    request_id = error.response.headers["x-request-id"]
    admitted, completed = pii.records(request_id)
    assert completed.status == "rejected" and completed.http_status == 400
    assert admitted.decision is not None and admitted.decision["action"] == "block"
    assert admitted.decision["pii"] == {"CREDIT_CARD": 1}
    _assert_absent(json.dumps(pii.content(request_id)), CARD)


def test_blocked_entity_falls_back_to_a_permitted_destination(pii: Harness) -> None:
    pii.client().chat.completions.create(
        model="chat-hybrid", messages=[{"role": "user", "content": f"Charge {CARD} please."}]
    )
    assert pii.beta.received == []
    assert CARD in _sent(pii.alpha)


def test_custom_recognizer_with_context(pii: Harness) -> None:
    pii.client().chat.completions.create(
        model="chat-external",
        messages=[{"role": "user", "content": f"The employee number is {EMPLOYEE}."}],
    )
    sent = _sent(pii.beta)
    _assert_absent(sent, EMPLOYEE)
    assert "<EMPLOYEE_ID>" in sent


def test_content_rules(pii: Harness) -> None:
    client = pii.client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="chat-internal",
            messages=[{"role": "user", "content": "Use key sk-proj-" + "a1B2" * 8}],
        )
    assert caught.value.code == "secret_detected"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="chat-internal", messages=[{"role": "user", "content": "About Nightjar..."}]
        )
    assert caught.value.code == "content_blocked"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="chat-internal", messages=[{"role": "user", "content": "hi"}], max_tokens=4096
        )
    assert caught.value.code == "max_tokens_exceeded"
    assert pii.alpha.received == []
    client.chat.completions.create(
        model="chat-internal", messages=[{"role": "user", "content": "hi"}]
    )
    assert pii.alpha.received[0]["body"]["max_tokens"] == 512


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
def test_response_rules_mask_answers(pii: Harness, stream: bool) -> None:
    client = pii.client(pii.quiet_key)
    request: Any = {
        "model": "chat-internal",
        "messages": [{"role": "user", "content": f"Reply to {EMAIL} today. Thanks!"}],
    }
    if stream:
        chunks = client.chat.completions.create(**request, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        text = client.chat.completions.create(**request).choices[0].message.content or ""
    assert EMAIL in _sent(pii.alpha)  # internal upstream may see it
    assert EMAIL not in text and "<EMAIL_ADDRESS>" in text
    assert text.endswith("Thanks!")


def test_audit_records_name_the_version_and_keep_only_redacted_content(pii: Harness) -> None:
    response = pii.client().chat.completions.with_raw_response.create(
        model="chat-external",
        messages=[{"role": "user", "content": f"Write to {NAME} at {EMAIL}."}],
    )
    answer = response.parse().choices[0].message.content or ""
    assert NAME in answer  # the caller got the original back ...
    records = pii.records(response.headers["x-request-id"])
    assert [r.kind for r in records] == ["admitted", "completed"]
    for record in records:
        assert record.policy_name == "pii-suite" and record.policy_version is not None
        assert record.content_retention == "redacted"
        row = json.dumps([record.decision, record.shadow])
        _assert_absent(row, NAME, EMAIL, "Jansen")  # ... the audit trail did not.
    stored = pii.content(response.headers["x-request-id"])
    assert [c["status"] for c in stored] == ["present", "present"]
    _assert_absent(json.dumps(stored), NAME, EMAIL, "Jansen")
    assert records[0].decision is not None
    assert records[0].decision["pii"] == {"EMAIL_ADDRESS": 1, "PERSON": 1}
    assert records[0].decision["redaction"]["external"] == {
        "EMAIL_ADDRESS": "pseudonymize",
        "PERSON": "pseudonymize",
    }


class RaisingAnalyzer:
    """An analyzer whose engine has broken."""

    def analyze(self, text: str, custom: CustomRecognizers | None = None) -> Sequence[Finding]:
        raise RuntimeError("the NER model crashed")


class StuckAnalyzer:
    """An analyzer that never finishes in time."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def analyze(self, text: str, custom: CustomRecognizers | None = None) -> Sequence[Finding]:
        self.release.wait(5)
        return []


@pytest.mark.parametrize("broken", [RaisingAnalyzer, StuckAnalyzer])
def test_analyzer_failure_blocks_the_request(
    database_url: str, upstreams: tuple[FaultyUpstream, FaultyUpstream], broken: type[Any]
) -> None:
    analyzer = broken()
    config = {**_hybrid_config(*upstreams), "pii": {"timeout_s": 0.3}}
    with running_proxy(database_url, upstreams, analyzer, policy=PII_POLICY, **config) as proxy:
        proxy.alpha.reset()
        proxy.beta.reset()
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as caught:
            proxy.client().chat.completions.create(
                model="chat-external",
                messages=[{"role": "user", "content": f"Hello, I am {NAME}."}],
            )
        assert time.monotonic() - started < 3
        assert caught.value.status_code == 503
        assert caught.value.code == "pii_unavailable"
        assert proxy.alpha.received == [] and proxy.beta.received == []
        _admitted, completed = proxy.records(caught.value.response.headers["x-request-id"])
        assert completed.status == "rejected" and completed.error_type == "pii_unavailable"
        if isinstance(analyzer, StuckAnalyzer):
            analyzer.release.set()
