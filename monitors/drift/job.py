"""`run_drift`: one drift run for one subject, top to bottom.

1. Count both windows; below ``min_requests`` in either the run is ``insufficient_data``
   (nothing is read further, nothing fires).
2. Read both windows (answers opened when a text signal is wanted), then the prompts of
   the requests sampled for embeddings; record the content read as one ``admin`` audit
   entry (``monitors.read_content``), committed before anything is computed from it.
3. Embed the samples (cached), run Evidently on the column signals, test the rates and
   the embeddings, apply Holm's correction across every signal tested, and decide each:
   drifted when the adjusted p-value is below alpha *and* the effect reaches its
   threshold.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session, sessionmaker

from governance.access import Principal
from governance.audit.admin import admin_entry
from governance.audit.shared import append_shared
from governance.audit.vault import KeyRing, MasterKey
from monitors.drift import report, signals
from monitors.drift.embeddings import Embedder
from monitors.drift.frame import WindowFrame, count_window, read_prompts, read_window
from monitors.drift.result import DriftOutcome, SignalResult, Status
from monitors.drift.spec import SIGNALS, TEXT_SIGNALS, DriftSpec, Window
from monitors.drift.statistics import holm

READ_CONTENT = "monitors.read_content"
EMBEDDINGS = {"prompt_embedding": "prompt", "response_embedding": "response"}
_NO_CONTENT = "no stored content in {which} (the policy's content retention is none)"


class _Clock:
    """Seconds spent per phase."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - started


def run_drift(
    sessions: sessionmaker[Session],
    spec: DriftSpec,
    *,
    now: dt.datetime,
    embedder: Embedder | None,
    master_key: MasterKey | None = None,
    progress: Callable[[str], None] | None = None,
    actor: Principal | None = None,
) -> DriftOutcome:
    """Compare the current window ending at ``now`` with the reference; see the module.

    ``embedder`` None skips the embedding signals; ``master_key`` opens answers kept
    ``full`` (encrypted); ``actor`` is who the content read is audited as (default the
    local operator ``drift-monitor``).
    """
    say = progress or (lambda _message: None)
    clock = _Clock()
    current_window, reference_window = spec.windows(now)
    with clock.phase("read"), sessions() as session:
        n_current = count_window(session, spec, current_window)
        n_reference = count_window(session, spec, reference_window)
    if min(n_current, n_reference) < spec.min_requests:
        say(f"{spec.subject}: insufficient data ({n_reference} reference, {n_current} current)")
        return DriftOutcome(
            spec.subject,
            current_window,
            reference_window,
            n_reference,
            n_current,
            "insufficient_data",
            [],
            {"*": f"fewer than {spec.min_requests} requests in a window"},
            None,
            spec.alpha,
            timings=clock.spent,
        )
    texts = any(spec.wants(name) for name in TEXT_SIGNALS)
    want_embeddings = [name for name in EMBEDDINGS if spec.wants(name)]
    skipped: dict[str, str] = {name: "not requested" for name in SIGNALS if not spec.wants(name)}
    ring = KeyRing(master_key)
    prompts: dict[str, dict[str, str]] = {"reference": {}, "current": {}}
    samples: dict[str, dict[str, list[str]]] = {}
    with clock.phase("read"), sessions() as session:
        say(f"{spec.subject}: reading {n_reference} reference and {n_current} current requests")
        reference = read_window(session, spec, reference_window, ring, texts=texts)
        current = read_window(session, spec, current_window, ring, texts=texts)
        frames = {"reference": reference, "current": current}
        derived = {side: signals.derive(frame.frame) for side, frame in frames.items()}
        if embedder is None:
            for name in want_embeddings:
                skipped[name] = "no embedder configured"
            want_embeddings = []
        for side, frame in frames.items():
            samples[side] = _samples(frame, spec)
            if "prompt_embedding" in want_embeddings:
                ids = samples[side]["prompt_ids"]
                prompts[side] = read_prompts(session, spec, ids, ring)
    opened = reference.content + current.content + sum(len(p) for p in prompts.values())
    if texts:
        _audit_read(sessions, spec, actor, now, opened, reference_window, current_window)

    for name in TEXT_SIGNALS & set(SIGNALS):
        if spec.wants(name) and name not in skipped:
            reason = _text_gap(name, frames, prompts, spec)
            if reason is not None:
                skipped[name] = reason

    tested: list[signals.Tested] = []
    pages: list[tuple[str, str]] = []
    columns = [
        name
        for name in (*signals.NUMERIC, *signals.CATEGORICAL)
        if spec.wants(name) and name not in skipped
    ]
    with clock.phase("evidently"):
        say(f"{spec.subject}: Evidently on {len(columns)} column signals")
        found, column_skips, column_pages = signals.test_columns(
            derived["reference"],
            derived["current"],
            columns,
            min_values=spec.min_values,
            render=spec.report,
        )
        tested += found
        skipped.update(column_skips)
        pages += column_pages
    with clock.phase("tests"):
        found_rates, rate_skips = signals.test_rates(
            derived["reference"],
            derived["current"],
            reference.frame["pii"],
            current.frame["pii"],
            spec,
        )
        tested += found_rates
        for name, reason in rate_skips.items():
            skipped.setdefault(name, reason)

    vectors: dict[str, dict[str, npt.NDArray[np.float32]]] = {"reference": {}, "current": {}}
    for name in want_embeddings:
        if name in skipped:
            continue
        assert embedder is not None
        with clock.phase("embed"):
            say(f"{spec.subject}: embedding {name}")
            for side in ("reference", "current"):
                vectors[side][name] = embedder.embed(_texts(name, side, samples, prompts))
    scores: dict[str, float] = {}
    if vectors["reference"] and spec.report_embeddings:
        with clock.phase("evidently"):
            embedded = report.embeddings_drift(
                vectors["reference"], vectors["current"], render=spec.report
            )
            scores = {name: value for (name, _), value in embedded.values.items()}
            pages += embedded.pages
    with clock.phase("tests"):
        for name in vectors["reference"]:
            tested.append(
                signals.test_embeddings(
                    name,
                    vectors["reference"][name],
                    vectors["current"][name],
                    spec,
                    scores.get(name),
                )
            )
        results = _decide(tested, spec)
    status: Status = "drifted" if any(r.drifted for r in results) else "ok"
    say(f"{spec.subject}: {status} ({sum(r.drifted for r in results)} of {len(results)})")
    return DriftOutcome(
        spec.subject,
        current_window,
        reference_window,
        reference.matched,
        current.matched,
        status,
        results,
        skipped,
        report.combine(pages) if pages else None,
        spec.alpha,
        timings=clock.spent,
    )


def _samples(frame: WindowFrame, spec: DriftSpec) -> dict[str, list[str]]:
    """The requests whose prompt and answer get embedded (at most ``embedding_sample``
    each), chosen by `signals.bottom_k` on the request id."""
    data = frame.frame
    ids = data["request_id"].tolist()
    picked = signals.bottom_k(ids, spec.embedding_sample, spec.seed)
    answered = data[data["response"].notna() & (data["response"].str.len() > 0)]
    answer_ids = answered["request_id"].tolist()
    answer_pick = signals.bottom_k(answer_ids, spec.embedding_sample, spec.seed)
    return {
        "prompt_ids": [ids[i] for i in picked],
        "responses": [str(answered["response"].iloc[i]) for i in answer_pick],
    }


def _texts(
    name: str,
    side: str,
    samples: dict[str, dict[str, list[str]]],
    prompts: dict[str, dict[str, str]],
) -> list[str]:
    if name == "prompt_embedding":
        return [prompts[side][i] for i in samples[side]["prompt_ids"] if i in prompts[side]]
    return samples[side]["responses"]


def _text_gap(
    name: str,
    frames: dict[str, WindowFrame],
    prompts: dict[str, dict[str, str]],
    spec: DriftSpec,
) -> str | None:
    """Why a text signal cannot be tested, or None when both windows have enough text."""
    if name == "prompt_embedding":
        counts = {side: len(found) for side, found in prompts.items()}
        what = "prompts"
    else:
        counts = {side: frame.content for side, frame in frames.items()}
        what = "answers"
    if all(count == 0 for count in counts.values()):
        unreadable = sum(frame.unreadable for frame in frames.values())
        if unreadable:
            return f"{unreadable} stored answers could not be opened (no or another master key)"
        return _NO_CONTENT.format(which="either window")
    floor = min(spec.min_values, spec.embedding_sample) if name in EMBEDDINGS else spec.min_values
    low = {side: count for side, count in counts.items() if count < floor}
    if low:
        listed = ", ".join(f"{side} {count}" for side, count in low.items())
        return f"too few {what} with stored content ({listed}; at least {floor} needed)"
    return None


def _decide(tested: list[signals.Tested], spec: DriftSpec) -> list[SignalResult]:
    adjusted = holm([t.p_value for t in tested])
    results = []
    for item, adjusted_p in zip(tested, adjusted, strict=True):
        threshold = spec.thresholds.for_signal(item.name, item.kind)
        effect = float(item.effect)
        drifted = adjusted_p < spec.alpha and effect >= threshold
        results.append(
            SignalResult(
                name=item.name,
                kind=str(item.kind),
                p_value=float(item.p_value),
                adjusted_p=float(adjusted_p),
                effect=effect,
                threshold=threshold,
                drifted=bool(drifted),
                reference=item.reference,
                current=item.current,
                evidently=item.evidently,
            )
        )
    return results


def _audit_read(
    sessions: sessionmaker[Session],
    spec: DriftSpec,
    actor: Principal | None,
    now: dt.datetime,
    count: int,
    reference_window: Window,
    current_window: Window,
) -> None:
    """One ``admin`` record of this run's content read, committed before it is used."""
    with sessions.begin() as session:
        append_shared(
            session,
            admin_entry(
                endpoint=READ_CONTENT,
                actor=actor or Principal.operator("drift-monitor"),
                recorded_at=dt.datetime.now(dt.UTC),
                details={
                    "job": "drift",
                    "subject": spec.subject,
                    "count": count,
                    "current_window": [t.isoformat() for t in current_window],
                    "reference_window": [t.isoformat() for t in reference_window],
                    "run_at": now.isoformat(),
                },
            ),
        )


__all__ = ["READ_CONTENT", "run_drift"]
