"""What a drift run returns: one `SignalResult` per tested signal, in a `DriftOutcome`."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "drifted", "insufficient_data"]


@dataclass(frozen=True, slots=True)
class SignalResult:
    """One signal's test. ``drifted`` is ``adjusted_p < alpha and effect >= threshold``.

    ``p_value`` is the raw two-sample p-value, ``adjusted_p`` after the run's Holm
    correction; ``effect`` is the signal kind's effect size (normed Wasserstein,
    Jensen-Shannon distance, Cohen's h or MMD²). ``reference``/``current`` are small
    summaries for people (n, mean, median, p95, proportions). ``evidently`` holds scores
    Evidently computed that do not decide anything (EmbeddingsDrift's distance).
    """

    name: str
    kind: str
    p_value: float
    adjusted_p: float
    effect: float
    threshold: float
    drifted: bool
    reference: dict[str, Any]
    current: dict[str, Any]
    evidently: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "p_value": _finite(self.p_value),
            "adjusted_p": _finite(self.adjusted_p),
            "effect": _finite(self.effect),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "reference": _jsonable(self.reference),
            "current": _jsonable(self.current),
            "evidently": _jsonable(self.evidently),
        }


@dataclass(frozen=True, slots=True)
class DriftOutcome:
    """The result of one drift run for one subject (``app/model/upstream``).

    ``status`` is ``insufficient_data`` when either window has fewer than
    ``min_requests`` completed requests (then ``signals`` is empty and nothing fires),
    ``drifted`` when any signal drifted, else ``ok``. ``skipped`` names each signal not
    tested and why (too few values, no stored content, not requested). ``timings`` are
    the seconds spent per phase (read, embed, evidently, tests).
    """

    subject: str
    current_window: tuple[dt.datetime, dt.datetime]
    reference_window: tuple[dt.datetime, dt.datetime]
    n_reference: int
    n_current: int
    status: Status
    signals: list[SignalResult]
    skipped: dict[str, str]
    report_html: str | None
    alpha: float = 0.05
    correction: str = "holm"
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def drifted(self) -> list[SignalResult]:
        return [s for s in self.signals if s.drifted]

    def figures(self) -> dict[str, Any]:
        """The run as JSON-serialisable values (what the run log stores)."""
        return {
            "subject": self.subject,
            "status": self.status,
            "current_window": [t.isoformat() for t in self.current_window],
            "reference_window": [t.isoformat() for t in self.reference_window],
            "n_current": self.n_current,
            "n_reference": self.n_reference,
            "alpha": self.alpha,
            "correction": self.correction,
            "drifted": [s.name for s in self.drifted],
            "signals": [s.as_dict() for s in self.signals],
            "skipped": dict(self.skipped),
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
        }


def _finite(value: float) -> float | None:
    """JSON has no NaN or infinity: None stands for "not a number"."""
    return float(value) if math.isfinite(value) else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _finite(value)
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return str(value)
