"""The drift job's parts: the refusal detector, the statistics, the text extraction and
the embedders (the endpoint one against a real HTTP server on loopback)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from monitors.drift import CachedEmbedder, DriftSpec, EndpointEmbedder, Frozen, Kind, Thresholds
from monitors.drift.embeddings import EmbeddingError
from monitors.drift.refusal import is_refusal
from monitors.drift.statistics import holm, mmd_test, two_proportions
from monitors.drift.texts import prompt_text, response_text
from monitors.proportions import cohens_h

# -- refusals -----------------------------------------------------------------------------
REFUSALS = [
    "I'm sorry, but I can't help with that.",
    "I\u2019m sorry, but I cannot assist with this request.",
    "I can't help you with creating malware.",
    "As an AI language model, I cannot provide medical diagnoses.",
    "I must respectfully decline to answer that.",
    "Unfortunately I am unable to comply with this request.",
    "Es tut mir leid, aber ich kann Ihnen dabei nicht helfen.",
    "Leider kann ich diese Anfrage nicht erfüllen.",
    "Ich bin leider nicht in der Lage, das zu tun.",
    "Je suis désolé, mais je ne peux pas vous aider avec cela.",
    "Je ne suis pas en mesure de répondre à cette question.",
    "Désolée, je ne peux pas faire ça.",
    "Lo siento, pero no puedo ayudarte con eso.",
    "No puedo proporcionar esa información.",
    "Como modelo de lenguaje, no puedo dar consejos legales.",
]
ANSWERS = [
    "Sure! Here is how to reset your password: open Settings, then Security.",
    "I can't stress enough how important backups are. Here is a plan: ...",
    "I can't help noticing that your loop never ends; move the increment inside it.",
    "The error says the file cannot be found. Check the path and try again.",
    "Ich kann nicht genug betonen, wie wichtig Tests sind. Hier ist ein Beispiel.",
    "Je ne peux pas m'empêcher de remarquer une faute de frappe : corrigez « teh ».",
    "No puedo creer lo fácil que es: abre el menú y pulsa Guardar.",
    "Voici la recette : mélangez la farine et les œufs.",
    "",
    "Here is a long answer. " * 40 + "I'm sorry, but I can't help with that.",
]


@pytest.mark.parametrize("text", REFUSALS)
def test_refusals_are_detected(text: str) -> None:
    assert is_refusal(text)


@pytest.mark.parametrize("text", ANSWERS)
def test_ordinary_answers_are_not_refusals(text: str) -> None:
    assert not is_refusal(text)


# -- statistics -----------------------------------------------------------------------------
def test_holm_matches_the_step_down_definition() -> None:
    # sorted p: 0.01, 0.02, 0.03, 0.5 -> 4*.01, max(.04, 3*.02), max(.06, 2*.03), max(.06, .5)
    assert holm([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    assert holm([0.9, 0.8]) == [1.0, 1.0]
    assert holm([]) == []


def test_cohens_h_and_the_two_proportion_test() -> None:
    assert cohens_h(0.5, 0.5) == 0
    assert cohens_h(0.02, 0.056) == pytest.approx(0.2, abs=0.01)  # Cohen's "small"
    same = two_proportions(10, 500, 10, 500)
    assert same.p_value == pytest.approx(1.0) and same.effect == 0
    spike = two_proportions(10, 500, 60, 500)
    assert spike.p_value < 1e-8 and spike.effect == pytest.approx(cohens_h(0.02, 0.12))
    assert two_proportions(0, 100, 0, 100).p_value == 1.0  # nothing to compare


def test_mmd_separates_shifted_clouds_and_not_identical_ones() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(120, 16)), rng.normal(size=(120, 16))
    null = mmd_test(a, b, permutations=500, seed=0)
    assert null.p_value > 0.01 and abs(null.mmd2) < 0.02
    shifted = mmd_test(a, b + 0.6, permutations=500, seed=0)
    assert shifted.p_value == pytest.approx(1 / 501) and shifted.mmd2 > 0.1
    assert mmd_test(np.ones((5, 3)), np.ones((5, 3)), permutations=10, seed=0).p_value == 1.0


def test_mmd_is_calibrated_under_the_null() -> None:
    """Under no change, p < 0.05 about 5% of the time (permutation tests are exact)."""
    rng = np.random.default_rng(2)
    rejections = sum(
        mmd_test(
            rng.normal(size=(40, 8)), rng.normal(size=(40, 8)), permutations=200, seed=i
        ).p_value
        < 0.05
        for i in range(60)
    )
    assert rejections <= 9  # 3 expected; 9 or more has probability < 0.005


def test_thresholds_and_spec_validation() -> None:
    thresholds = Thresholds(per_signal={"latency_ms": 0.3, "pii_rate": 0.5})
    assert thresholds.for_signal("latency_ms", Kind.NUMERIC) == 0.3
    assert thresholds.for_signal("ttft_ms", Kind.NUMERIC) == 0.1
    assert thresholds.for_signal("pii_rate:EMAIL_ADDRESS", Kind.RATE) == 0.5
    assert thresholds.for_signal("error_rate", Kind.RATE) == 0.2
    with pytest.raises(ValueError, match="unknown drift signals"):
        DriftSpec(app="a", model="m", upstream="u", signals=frozenset({"vibes"}))
    import datetime as dt

    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match="end after"):
        Frozen(start, start)
    spec = DriftSpec(
        app="a", model="m", upstream="u", reference=Frozen(start, start + dt.timedelta(1))
    )
    current, reference = spec.windows(start + dt.timedelta(days=3))
    assert reference == (start, start + dt.timedelta(1))
    assert current[1] - current[0] == dt.timedelta(hours=24)


# -- text extraction -------------------------------------------------------------------------
def test_prompt_and_answer_text_from_stored_content() -> None:
    chat = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "second"}]},
        ]
    }
    assert prompt_text(chat) == "second"
    assert prompt_text({"prompt": "complete me"}) == "complete me"
    assert prompt_text(None) is None
    assert response_text({"choices": [{"message": {"content": "hi"}}]}) == "hi"
    assert response_text([{"index": 0, "content": "streamed"}]) == "streamed"
    assert response_text({"choices": [{"text": "legacy"}]}) == "legacy"
    assert response_text({"choices": [{"message": {"tool_calls": []}}]}) == ""
    assert response_text(None) is None


# -- embedders --------------------------------------------------------------------------------
def _vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [b - 128.0 for b in digest[:8]]


class _Handler(BaseHTTPRequestHandler):
    calls: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), **body}
        )
        if self.headers.get("Authorization") != "Bearer sk-test-embed":
            self.send_response(401)
            self.end_headers()
            return
        data = [{"index": i, "embedding": _vector(t)} for i, t in enumerate(body["input"])]
        payload = json.dumps({"object": "list", "data": data[::-1]}).encode()  # any order
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    _Handler.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_endpoint_embedder_batches_normalises_and_is_cached(endpoint: str) -> None:
    inner = EndpointEmbedder(endpoint, "demo-embed", api_key="sk-test-embed", batch=2)
    cached = CachedEmbedder(inner)
    texts = ["alpha", "beta", "gamma", "alpha"]
    vectors = cached.embed(texts)
    assert vectors.shape == (4, 8) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    expected = np.asarray(_vector("gamma")) / np.linalg.norm(_vector("gamma"))
    assert np.allclose(vectors[2], expected, atol=1e-6)
    assert np.array_equal(vectors[0], vectors[3])
    assert [c["input"] for c in _Handler.calls] == [["alpha", "beta"], ["gamma"]]
    assert {c["path"] for c in _Handler.calls} == {"/v1/embeddings"}
    assert {c["model"] for c in _Handler.calls} == {"demo-embed"}
    cached.embed(["beta", "gamma"])  # overlapping window: nothing new to embed
    assert len(_Handler.calls) == 2 and cached.hits == 3 and cached.misses == 3


def test_endpoint_embedder_reports_http_errors(endpoint: str) -> None:
    with pytest.raises(EmbeddingError, match="HTTP 401"):
        EndpointEmbedder(endpoint, "demo-embed", api_key="wrong").embed(["x"])
    with pytest.raises(ValueError, match="http"):
        EndpointEmbedder("ftp://example.invalid", "m")
