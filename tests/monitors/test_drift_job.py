"""The drift job against real audit trails: synthetic traffic written through the real
`AuditWriter` (hash-chained, content sealed per app), read back by `run_drift` with real
Evidently and the real embedding model.

The traffic is made up: templated support questions and canned answers, no real
personal data. Changes are injected one at a time into a single window.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

import migrations
from governance.audit import AuditEntry, AuditWriter, RecordKind
from governance.audit.vault import DataKeys, MasterKey
from governance.db import AuditRecord, make_engine, session_factory
from monitors.drift import (
    READ_CONTENT,
    CachedEmbedder,
    DriftSpec,
    Frozen,
    LocalEmbedder,
    Trailing,
    run_drift,
)

MASTER = MasterKey(bytes(range(32)))
T0 = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)

TOPICS = {
    "billing": [
        "How do I update the card used for invoice {n} on the {p} plan?",
        "Why was I charged twice for the {p} plan this month?",
        "Can I get a refund for invoice {n}? I cancelled the {p} plan.",
        "Where can I download the receipt for invoice {n}?",
    ],
    "shipping": [
        "My parcel {n} has not arrived yet, where is it?",
        "Can I change the delivery address for order {n}?",
        "How long does standard shipping take for the {p} bundle?",
        "The tracking page for order {n} shows no updates, what now?",
    ],
    "account": [
        "I forgot my password, how do I reset it for the {p} workspace?",
        "How do I add a second admin to the {p} workspace?",
        "Can I rename my account handle without losing workspace {n}?",
        "How do I turn on two-factor login for the {p} workspace?",
    ],
}
NEW_TOPIC = [
    "Give me a vegetarian lasagne recipe for {n} people.",
    "How long should I bake sourdough bread at home?",
    "What spices go well with roasted {p} vegetables?",
    "Suggest a three-course dinner menu with {p} for {n} guests.",
]
PLANS = ["basic", "team", "pro", "enterprise", "starter"]
SENTENCES = [
    "Open the settings page and choose the relevant section.",
    "You will see the current status at the top of the page.",
    "If the option is greyed out, ask an administrator to enable it.",
    "Changes usually take effect within a few minutes.",
    "You can also reach our support team from the help menu.",
    "We have sent a confirmation to the address on file.",
]
# Canned answers of 2 to 6 sentences: a bounded set of texts, so embedding them is cheap.
ANSWERS = [" ".join(SENTENCES[o : o + k]) for k in range(2, 7) for o in (0, 6 - k)]
REFUSALS = [
    "I'm sorry, but I can't help with that request.",
    "Es tut mir leid, aber ich kann Ihnen dabei nicht helfen.",
    "Lo siento, pero no puedo ayudarte con eso.",
]


@dataclass(frozen=True)
class Mix:
    """How one window's traffic is generated."""

    requests: int = 150
    latency_scale: float = 1.0
    refusal: float = 0.02
    new_topic: float = 0.0
    prompt_scale: float = 1.0
    error: float = 0.02
    retention: str = "full"


def entries(hour: int, mix: Mix, rng: random.Random, app: str = "support") -> list[AuditEntry]:
    """Admitted and completed records for one hour of one subject's traffic."""
    out: list[AuditEntry] = []
    start = T0 + hour * HOUR
    for i in range(mix.requests):
        at = start + dt.timedelta(seconds=(i + rng.random()) * 3600 / (mix.requests + 1))
        rid = f"req-{app}-{hour}-{i}"
        templates = NEW_TOPIC if rng.random() < mix.new_topic else TOPICS[rng.choice(list(TOPICS))]
        prompt = rng.choice(templates).format(n=rng.randint(1, 3), p=rng.choice(PLANS))
        stream = rng.random() < 0.5
        pii = {"EMAIL_ADDRESS": 1} if rng.random() < 0.1 else {}
        common: dict[str, Any] = {
            "request_id": rid,
            "app": app,
            "team": "cx",
            "key_id": "k-support",
            "endpoint": "chat.completions",
            "content_retention": mix.retention,
            "requested_model": "chat-default",
            "upstream": "vllm-a",
            "stream": stream,
            "decision": {"action": "allow", "rules": [], "pii": pii},
        }
        request = {"model": "chat-default", "messages": [{"role": "user", "content": prompt}]}
        out.append(
            AuditEntry(
                kind=RecordKind.ADMITTED,
                recorded_at=at,
                status="admitted",
                request_content=request,
                **common,
            )
        )
        done = at + dt.timedelta(milliseconds=900)
        if rng.random() < mix.error:
            out.append(
                AuditEntry(
                    kind=RecordKind.COMPLETED,
                    recorded_at=done,
                    status="upstream_error",
                    error_type="upstream_error",
                    http_status=502,
                    latency_ms=rng.lognormvariate(6.0, 0.3),
                    **common,
                )
            )
            continue
        if rng.random() < mix.refusal:
            answer, finish = rng.choice(REFUSALS), "stop"
        else:
            answer = rng.choice(ANSWERS)
            finish = "length" if rng.random() < 0.05 else "stop"
        words = len(prompt.split())
        out.append(
            AuditEntry(
                kind=RecordKind.COMPLETED,
                recorded_at=done,
                status="ok",
                http_status=200,
                finish_reasons=[finish],
                input_tokens=int((40 + words * 1.3) * mix.prompt_scale) + rng.randint(0, 20),
                output_tokens=int(len(answer.split()) * 1.3) + rng.randint(0, 5),
                latency_ms=rng.lognormvariate(6.7, 0.25) * mix.latency_scale,
                ttft_ms=rng.lognormvariate(5.3, 0.3) if stream else None,
                response_content={"choices": [{"index": 0, "message": {"content": answer}}]},
                **common,
            )
        )
    return out


def seed(engine: Engine, hours: dict[int, Mix], app: str = "support") -> None:
    """Write the traffic of each hour through one real audit writer (one chain)."""
    rng = random.Random(7)
    writer = AuditWriter(engine, data_keys=DataKeys(MASTER), batch_max=4000)
    writer.start()
    try:
        for hour, mix in sorted(hours.items()):
            writer.write_blocking(entries(hour, mix, rng, app), timeout_s=60)
    finally:
        writer.close()


SPEC = DriftSpec(
    app="support",
    model="chat-default",
    upstream="vllm-a",
    window=HOUR,
    reference=Trailing(days=6 / 24),
    embedding_sample=150,
    report=False,
    report_embeddings=False,
)


@pytest.fixture(scope="session")
def embedder() -> CachedEmbedder:
    """The real model, loaded once (one torch thread: the machine is shared)."""
    return CachedEmbedder(LocalEmbedder(threads=1))


def test_local_embedder_puts_paraphrases_closer_than_other_topics(
    embedder: CachedEmbedder,
) -> None:
    vectors = embedder.embed(
        [
            "How do I reset my password?",
            "I forgot my password, how can I change it?",
            "Give me a recipe for vegetable lasagne.",
        ]
    )
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def _admin_reads(sessions: sessionmaker[Session]) -> list[AuditRecord]:
    with sessions() as session:
        query = select(AuditRecord).where(
            AuditRecord.kind == "admin", AuditRecord.endpoint == READ_CONTENT
        )
        return list(session.scalars(query.order_by(AuditRecord.id)))


# -- the scenario: 30 stable windows, then four changes ---------------------------------
CHANGES = {
    "prompt_embedding": Mix(new_topic=0.4),
    "latency_ms": Mix(latency_scale=1.6),
    "refusal_rate": Mix(refusal=0.2),
    "prompt_tokens": Mix(prompt_scale=2.0),
}
STABLE_WINDOWS = 30
WARMUP = 6  # hours of reference before the first window


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    """Stable traffic for 36 hours; then each change for one hour, six stable hours apart
    (so each change's trailing reference is stable again)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('drift') / 'tollhouse.db'}"
    migrations.upgrade(url)
    engine = make_engine(url)
    hours = {h: Mix() for h in range(WARMUP + STABLE_WINDOWS + 7 * len(CHANGES))}
    for index, mix in enumerate(CHANGES.values()):
        hours[WARMUP + STABLE_WINDOWS + 7 * index] = mix
    seed(engine, hours)
    yield session_factory(engine)
    engine.dispose()


def test_stable_traffic_raises_at_most_one_drifted_result(
    scenario: sessionmaker[Session], embedder: CachedEmbedder
) -> None:
    fired: list[tuple[int, str]] = []
    for window in range(STABLE_WINDOWS):
        now = T0 + (WARMUP + window + 1) * HOUR
        outcome = run_drift(scenario, SPEC, now=now, embedder=embedder, master_key=MASTER)
        assert outcome.status != "insufficient_data"
        assert not outcome.skipped, outcome.skipped  # every signal tested, ttft included
        json.dumps(outcome.figures())
        fired += [(window, s.name) for s in outcome.drifted]
    assert len(fired) <= 1, fired
    assert len(_admin_reads(scenario)) >= STABLE_WINDOWS  # one audited read per run


@pytest.mark.parametrize("signal", list(CHANGES))
def test_injected_change_is_detected_in_its_first_window(
    scenario: sessionmaker[Session], embedder: CachedEmbedder, signal: str
) -> None:
    start = WARMUP + STABLE_WINDOWS + 7 * list(CHANGES).index(signal)
    outcome = run_drift(
        scenario, SPEC, now=T0 + (start + 1) * HOUR, embedder=embedder, master_key=MASTER
    )
    drifted = {s.name: s for s in outcome.drifted}
    assert outcome.status == "drifted"
    assert signal in drifted, [(s.name, s.adjusted_p, s.effect) for s in outcome.signals]
    if signal == "prompt_embedding":  # a topic shift changes what is asked, not how much
        assert "prompt_tokens" not in drifted and "latency_ms" not in drifted


def test_evidently_report_and_embedding_score(
    scenario: sessionmaker[Session], embedder: CachedEmbedder
) -> None:
    """The full report: Evidently's HTML, with its EmbeddingsDrift score beside our MMD."""
    start = WARMUP + STABLE_WINDOWS  # the topic shift
    wanted = frozenset({"latency_ms", "finish_reason", "prompt_embedding"})
    # A small sample: Evidently's embeddings plot runs t-SNE, seconds per hundred points.
    spec = replace(SPEC, report=True, report_embeddings=True, signals=wanted, embedding_sample=60)
    outcome = run_drift(
        scenario, spec, now=T0 + (start + 1) * HOUR, embedder=embedder, master_key=MASTER
    )
    assert outcome.report_html is not None
    assert "Drift in column" in outcome.report_html  # Evidently's ValueDrift widgets
    (prompt,) = [s for s in outcome.signals if s.name == "prompt_embedding"]
    assert prompt.drifted and 0.5 < prompt.evidently["classifier_auc"] <= 1.0
    assert set(outcome.skipped) >= {"error_rate", "response_embedding"}  # not requested


# -- job behaviour, on SQLite and PostgreSQL ----------------------------------------------
@pytest.fixture
def sessions(fresh_database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(fresh_database_url)
    yield session_factory(engine)
    engine.dispose()


def _engine(sessions: sessionmaker[Session]) -> Engine:
    bind = sessions.kw["bind"]
    assert isinstance(bind, Engine)
    return bind


def test_too_few_requests_is_insufficient_data_and_reads_nothing(
    sessions: sessionmaker[Session],
) -> None:
    seed(_engine(sessions), {0: Mix(requests=120), 1: Mix(requests=60)})
    spec = replace(SPEC, reference=Frozen(T0, T0 + HOUR))
    outcome = run_drift(sessions, spec, now=T0 + 2 * HOUR, embedder=None, master_key=MASTER)
    assert outcome.status == "insufficient_data"
    assert (outcome.n_reference, outcome.n_current) == (120, 60)
    assert outcome.signals == [] and _admin_reads(sessions) == []
    assert outcome.figures()["status"] == "insufficient_data"


def test_no_stored_content_skips_text_signals(sessions: sessionmaker[Session]) -> None:
    seed(_engine(sessions), {0: Mix(retention="none"), 1: Mix(retention="none", error=0.3)})
    spec = replace(SPEC, reference=Frozen(T0, T0 + HOUR))
    outcome = run_drift(sessions, spec, now=T0 + 2 * HOUR, embedder=None, master_key=MASTER)
    for name in ("response_chars", "response_words", "refusal_rate"):
        assert "content retention is none" in outcome.skipped[name]
    assert outcome.skipped["prompt_embedding"] == "no embedder configured"
    tested = {s.name: s for s in outcome.signals}
    assert {"latency_ms", "prompt_tokens", "finish_reason", "error_rate"} <= set(tested)
    assert "pii_rate:EMAIL_ADDRESS" in tested
    assert tested["error_rate"].drifted and outcome.status == "drifted"
    (read,) = _admin_reads(sessions)
    assert read.decision is not None and read.decision["count"] == 0


def test_sealed_content_is_read_with_the_master_key_and_the_read_is_audited(
    sessions: sessionmaker[Session],
) -> None:
    seed(_engine(sessions), {0: Mix(), 1: Mix(refusal=0.3)})
    spec = replace(SPEC, reference=Frozen(T0, T0 + HOUR))
    outcome = run_drift(sessions, spec, now=T0 + 2 * HOUR, embedder=None, master_key=MASTER)
    assert "refusal_rate" in {s.name for s in outcome.drifted}
    (read,) = _admin_reads(sessions)
    assert read.decision is not None
    assert read.decision["subject"] == "support/chat-default/vllm-a"
    (errors,) = [s for s in outcome.signals if s.name == "error_rate"]
    answered = outcome.n_reference + outcome.n_current
    answered -= errors.reference["hits"] + errors.current["hits"]
    assert read.decision["count"] == answered  # each answer opened once, none unaudited
    other = MasterKey(os.urandom(32))
    locked = run_drift(sessions, spec, now=T0 + 2 * HOUR, embedder=None, master_key=other)
    assert "could not be opened" in locked.skipped["refusal_rate"]
