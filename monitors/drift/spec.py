"""What a drift job compares: one subject (app, model alias, upstream), a current window,
a reference, and the decision rule (minimum sizes, alpha, effect-size thresholds).

Everything here is a frozen value; `DriftSpec.windows` turns a spec and the job's clock
into the two half-open time ranges ``[start, end)`` the job reads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

Window = tuple[dt.datetime, dt.datetime]


class Kind(StrEnum):
    """How a signal is tested (and so what its effect size means)."""

    NUMERIC = "numeric"  # KS p-value, normed Wasserstein effect (Evidently)
    CATEGORICAL = "categorical"  # chi-square p-value, Jensen-Shannon effect (Evidently)
    RATE = "rate"  # two-proportion z-test p-value, Cohen's h effect
    EMBEDDING = "embedding"  # MMD permutation p-value, MMD² effect


# Every signal the job knows, with its kind. PII entity rates are added per entity type
# seen in either window, named ``pii_rate:<ENTITY_TYPE>``.
SIGNALS: Mapping[str, Kind] = MappingProxyType(
    {
        "prompt_tokens": Kind.NUMERIC,
        "completion_tokens": Kind.NUMERIC,
        "response_chars": Kind.NUMERIC,
        "response_words": Kind.NUMERIC,
        "latency_ms": Kind.NUMERIC,
        "ttft_ms": Kind.NUMERIC,
        "finish_reason": Kind.CATEGORICAL,
        "error_rate": Kind.RATE,
        "refusal_rate": Kind.RATE,
        "pii_rate": Kind.RATE,
        "prompt_embedding": Kind.EMBEDDING,
        "response_embedding": Kind.EMBEDDING,
    }
)
PII_PREFIX = "pii_rate:"

# Signals that need stored content (prompt or response text).
TEXT_SIGNALS = frozenset(
    {"response_chars", "response_words", "refusal_rate", "prompt_embedding", "response_embedding"}
)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The smallest effect that counts as drift, per kind of signal.

    A statistically significant change smaller than this is real but too small to page
    anyone about: with 100k requests a window, KS finds a 1 ms latency shift. Defaults:

    - ``wasserstein`` 0.1: the Wasserstein distance over the reference's standard deviation
      (Evidently's normed Wasserstein, its own default threshold); 0.1 is "a tenth of a
      standard deviation of mass moved", a shift an SRE notices on a histogram.
    - ``jensenshannon`` 0.1: Jensen-Shannon distance of the finish-reason mix (Evidently's
      default); e.g. ``length`` going from 5% to about 15% of answers.
    - ``cohens_h`` 0.2: Cohen's "small" effect for proportions; 2% -> 5.6% refusals,
      10% -> 17% errors.
    - ``mmd2`` 0.02: unbiased MMD² of sentence embeddings under an RBF kernel with the
      median-heuristic bandwidth. Same-topic windows of a few hundred texts stay well under
      0.01; a new topic in 40% of the prompts gives about 0.05 (calibrated on
      all-MiniLM-L6-v2 with tests/monitors/test_drift_scenario.py's traffic).
    - ``per_signal`` overrides one signal by name (``latency_ms``, ``pii_rate:EMAIL``...).
    """

    wasserstein: float = 0.1
    jensenshannon: float = 0.1
    cohens_h: float = 0.2
    mmd2: float = 0.02
    per_signal: Mapping[str, float] = field(default_factory=dict)

    def for_signal(self, name: str, kind: Kind) -> float:
        if name in self.per_signal:
            return self.per_signal[name]
        if name.startswith(PII_PREFIX) and "pii_rate" in self.per_signal:
            return self.per_signal["pii_rate"]
        return {
            Kind.NUMERIC: self.wasserstein,
            Kind.CATEGORICAL: self.jensenshannon,
            Kind.RATE: self.cohens_h,
            Kind.EMBEDDING: self.mmd2,
        }[kind]


@dataclass(frozen=True, slots=True)
class Trailing:
    """Reference: the ``days`` just before the current window (7 to 28 usual)."""

    days: float = 7


@dataclass(frozen=True, slots=True)
class Frozen:
    """Reference: a fixed baseline range ``[start, end)`` (timezone-aware)."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a frozen reference needs timezone-aware start and end")
        if self.end <= self.start:
            raise ValueError("a frozen reference must end after it starts")


@dataclass(frozen=True, slots=True)
class DriftSpec:
    """One drift job's subject and decision rule.

    ``min_requests`` is per window: below it the run is ``insufficient_data`` and no signal
    fires. ``min_values`` is per signal (a numeric column, the texts with content): below
    it that signal is skipped. ``max_rows`` caps what is read per window (a systematic
    sample by record id beyond it), so a 28-day reference stays affordable.
    ``signals``, when given, limits the run to those names (``pii_rate`` covers every
    entity type). ``report`` builds Evidently's HTML report. ``report_embeddings`` adds
    Evidently's EmbeddingsDrift score and plot; off by default because its plot runs
    t-SNE, 10-20 s per embedding signal on one core, longer than the rest of a run.
    ``permutations`` is the MMD test's count (p-values resolve to 1/(permutations+1)).
    """

    app: str
    model: str
    upstream: str
    window: dt.timedelta = dt.timedelta(hours=24)
    reference: Trailing | Frozen = Trailing()
    min_requests: int = 100
    min_values: int = 50
    alpha: float = 0.05
    thresholds: Thresholds = Thresholds()
    embedding_sample: int = 300
    permutations: int = 1000
    signals: frozenset[str] | None = None
    seed: int = 0
    max_rows: int = 250_000
    report: bool = True
    report_embeddings: bool = False

    def __post_init__(self) -> None:
        if self.window <= dt.timedelta(0):
            raise ValueError("the current window must be positive")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be between 0 and 1")
        if self.min_requests < 2 or self.min_values < 2 or self.embedding_sample < 2:
            raise ValueError("min_requests, min_values and embedding_sample must be at least 2")
        unknown = (self.signals or frozenset()) - set(SIGNALS)
        if unknown:
            raise ValueError(f"unknown drift signals: {', '.join(sorted(unknown))}")

    @property
    def subject(self) -> str:
        return f"{self.app}/{self.model}/{self.upstream}"

    def wants(self, signal: str) -> bool:
        """Whether ``signal`` (or its family, for ``pii_rate:<TYPE>``) is to be computed."""
        family = "pii_rate" if signal.startswith(PII_PREFIX) else signal
        return self.signals is None or family in self.signals

    def windows(self, now: dt.datetime) -> tuple[Window, Window]:
        """(current, reference): the current window ends at ``now``."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        current = (now - self.window, now)
        if isinstance(self.reference, Frozen):
            return current, (self.reference.start, self.reference.end)
        return current, (current[0] - dt.timedelta(days=self.reference.days), current[0])
