"""One canary run: ask the canary set, compare with the baseline, confirm before alerting.

The first run of a job for a model records its baseline batch. Every later run asks the
same items with the same parameters and compares:

- the completions' joint (prompt, completion) distribution with the baseline's, by
  `change_test` (MMD with a Hamming kernel, combined with logprob statistics where the
  upstream returns logprobs; one prompt-stratified permutation test);
- the graded items' accuracy, by a two-proportion test.

Both at ``alpha / 2`` (Bonferroni over the two; ``alpha`` for the first alone when no
item is graded). When either fires, a fresh batch is
asked and tested the same way; only a confirmed change raises an alert, so one unlucky
batch pages nobody.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from governance.db import CanaryBaseline
from governance.db import CanarySample as SampleRow
from monitors.alerts import Finding
from monitors.canary.client import Answered, CanaryClient, Probe
from monitors.canary.prompts import CanaryItem
from monitors.canary.stats import CanarySample, change_test
from monitors.proportions import two_proportion_test

# A batch with more failed items than this proves nothing either way.
MAX_FAILED_SHARE = 0.2
PERMUTATIONS = 2000


@dataclass
class CanaryOutcome:
    status: str  # baseline | ok | unconfirmed | changed | failed
    figures: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def run_status(self) -> str:
        return {"changed": "alerting", "failed": "failed"}.get(self.status, "ok")


@dataclass(frozen=True)
class Comparison:
    p_distribution: float
    p_accuracy: float | None
    components: dict[str, float]
    accuracy: tuple[float | None, float | None]

    def changed(self, alpha: float) -> bool:
        """Bonferroni over the two tests when there are graded items, else the one test."""
        if self.p_accuracy is None:
            return self.p_distribution <= alpha
        threshold = alpha / 2
        return self.p_distribution <= threshold or self.p_accuracy <= threshold

    def as_json(self) -> dict[str, Any]:
        return {
            "p_distribution": self.p_distribution,
            "p_accuracy": self.p_accuracy,
            "components": self.components,
            "accuracy_baseline": self.accuracy[0],
            "accuracy_current": self.accuracy[1],
        }


class CanaryStore:
    """Canary samples and baselines in the database."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], dt.datetime]) -> None:
        self._sessions = sessions
        self._clock = clock

    def save(self, run_id: int, batch: str, answered: Sequence[Answered]) -> None:
        with self._sessions.begin() as session:
            session.add_all(
                SampleRow(
                    run_id=run_id,
                    batch=batch,
                    prompt_id=a.item.id,
                    sample_index=a.index,
                    request_id=a.request_id,
                    completion=a.sample.text,
                    correct=a.item.grade(a.sample.text),
                    token_logprobs=list(a.sample.token_logprobs)
                    if a.sample.token_logprobs is not None
                    else None,
                    top_logprobs=[{t: lp} for t, lp in a.sample.top_logprobs]
                    if a.sample.top_logprobs is not None
                    else None,
                    response_model=a.response_model,
                    system_fingerprint=a.system_fingerprint,
                )
                for a in answered
            )

    def baseline(self, job: str, subject: str) -> tuple[int, list[SampleRow]] | None:
        with self._sessions() as session:
            base = session.get(CanaryBaseline, (job, subject[:300]))
            if base is None:
                return None
            rows = list(
                session.scalars(
                    select(SampleRow)
                    .where(SampleRow.run_id == base.run_id, SampleRow.batch == "baseline")
                    .order_by(SampleRow.id)
                )
            )
            session.expunge_all()
            return base.run_id, rows

    def set_baseline(self, job: str, subject: str, run_id: int, actor: str) -> None:
        with self._sessions.begin() as session:
            base = session.get(CanaryBaseline, (job, subject[:300]))
            if base is None:
                session.add(
                    CanaryBaseline(
                        job=job,
                        subject=subject[:300],
                        run_id=run_id,
                        set_at=self._clock(),
                        set_by=actor,
                    )
                )
            else:
                base.run_id, base.set_at, base.set_by = run_id, self._clock(), actor

    def forget_baseline(self, job: str, subject: str) -> bool:
        with self._sessions.begin() as session:
            base = session.get(CanaryBaseline, (job, subject[:300]))
            if base is None:
                return False
            session.delete(base)
            return True


def _row_sample(row: SampleRow) -> CanarySample:
    top = None
    if row.top_logprobs:
        top = tuple((t, float(lp)) for entry in row.top_logprobs for t, lp in entry.items())
    return CanarySample(
        prompt_id=row.prompt_id,
        text=row.completion,
        token_logprobs=tuple(row.token_logprobs) if row.token_logprobs is not None else None,
        top_logprobs=top,
    )


def compare(
    baseline: Sequence[SampleRow],
    current: Sequence[Answered],
    *,
    rng: np.random.Generator,
    permutations: int = PERMUTATIONS,
) -> Comparison:
    test = change_test(
        [_row_sample(r) for r in baseline],
        [a.sample for a in current],
        permutations=permutations,
        rng=rng,
    )
    graded_base = [r.correct for r in baseline if r.correct is not None]
    graded_now = [g for g in (a.item.grade(a.sample.text) for a in current) if g is not None]
    p_accuracy = None
    accuracy: tuple[float | None, float | None] = (None, None)
    if graded_base and graded_now:
        hits_base, hits_now = sum(graded_base), sum(graded_now)
        accuracy = (hits_base / len(graded_base), hits_now / len(graded_now))
        _, p_accuracy = two_proportion_test(hits_base, len(graded_base), hits_now, len(graded_now))
    return Comparison(test.p_value, p_accuracy, dict(test.components), accuracy)


def run_canary(
    *,
    job: str,
    run_id: int,
    items: Sequence[CanaryItem],
    probe: Probe,
    client: CanaryClient,
    store: CanaryStore,
    alpha: float,
    rng: np.random.Generator,
    progress: Callable[[str], None] = lambda _: None,
) -> CanaryOutcome:
    """Ask, store, compare (and confirm); the findings are what to alert on."""
    subject = probe.model
    progress(f"{job}: asking {len(items)} prompts x {probe.samples} samples of {subject}")
    answered, failed = client.ask(items, probe)
    figures: dict[str, Any] = {
        "model": subject,
        "prompts": len(items),
        "samples_per_prompt": probe.samples,
        "failed_prompts": len(failed),
        "errors": sorted({f.error for f in failed})[:5],
        "response_models": sorted({a.response_model or "" for a in answered}),
        "system_fingerprints": sorted({a.system_fingerprint or "" for a in answered}),
        "logprobs": any(a.sample.token_logprobs for a in answered),
    }
    if len(failed) > MAX_FAILED_SHARE * len(items):
        return CanaryOutcome("failed", {**figures, "reason": "too many canary requests failed"})
    known = store.baseline(job, subject)
    if known is None:
        store.save(run_id, "baseline", answered)
        store.set_baseline(job, subject, run_id, actor=f"monitor:{job}")
        progress(f"{job}: first run; {len(answered)} samples recorded as the baseline")
        return CanaryOutcome("baseline", {**figures, "baseline_run": run_id})
    baseline_run, baseline = known
    store.save(run_id, "check", answered)
    first = compare(baseline, answered, rng=rng)
    figures |= {"baseline_run": baseline_run, "alpha": alpha, "check": first.as_json()}
    progress(
        f"{job}: check p={first.p_distribution:.4f} (distribution), accuracy p={first.p_accuracy}"
    )
    if not first.changed(alpha):
        return CanaryOutcome("ok", figures)
    progress(f"{job}: the check fired; asking a fresh batch to confirm")
    again, failed_again = client.ask(items, probe)
    if len(failed_again) > MAX_FAILED_SHARE * len(items):
        return CanaryOutcome("failed", {**figures, "reason": "the confirming batch failed"})
    store.save(run_id, "confirm", again)
    second = compare(baseline, again, rng=rng)
    figures["confirm"] = second.as_json()
    progress(f"{job}: confirm p={second.p_distribution:.4f}, accuracy p={second.p_accuracy}")
    if not second.changed(alpha):
        return CanaryOutcome("unconfirmed", figures)
    summary = (
        f"canary: {subject} answers differently from its baseline (run {baseline_run}); "
        f"distribution p={second.p_distribution:.2g}"
    )
    if second.accuracy[0] is not None and second.accuracy[1] is not None:
        summary += f", graded accuracy {second.accuracy[0]:.0%} -> {second.accuracy[1]:.0%}"
    finding = Finding(
        condition=f"{job}:canary:{subject}",
        kind="model_change.canary",
        severity="warning",
        subject=subject,
        summary=summary,
        details={"model": subject, "baseline_run": baseline_run, "run": run_id, **second.as_json()},
    )
    return CanaryOutcome("changed", figures, [finding])
