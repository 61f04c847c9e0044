"""Running a configured monitor job: do the work, store the run, raise or resolve its
alerts, tell the sinks.

Everything a job needs is built by the caller (the ``tollhouse monitors`` command, or a
test) and handed in as `Services`; this module decides nothing about where things come
from.
"""

from __future__ import annotations

import datetime as dt
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from governance.audit.vault import MasterKey
from governance.config.monitors import CanaryJob, DriftJob, FingerprintsJob, MonitorsConfig
from monitors.alerts import AlertBook, Changes, Finding
from monitors.canary.client import CanaryClient, Probe
from monitors.canary.job import CanaryStore, run_canary
from monitors.canary.prompts import canary_set
from monitors.drift import DriftOutcome, DriftSpec, Embedder, Frozen, Trailing, run_drift
from monitors.fingerprints import watch_fingerprints
from monitors.runs import RunLog
from monitors.sinks import Delivery, Notifier

JobConfig = DriftJob | FingerprintsJob | CanaryJob

EXIT_QUIET = 0
EXIT_FAILED = 1
EXIT_FIRING = 3


@dataclass
class Services:
    config: MonitorsConfig
    sessions: sessionmaker[Session]
    clock: Callable[[], dt.datetime]
    alerts: AlertBook
    notifier: Notifier
    canary_client: Callable[[], CanaryClient]
    embedder: Callable[[], Embedder | None]
    master_key: MasterKey | None = None
    progress: Callable[[str], None] = lambda _: None

    @property
    def runs(self) -> RunLog:
        return RunLog(self.sessions, self.clock)


@dataclass
class JobResult:
    job: str
    runs: list[tuple[int, str, str]] = field(default_factory=list)  # (run id, subject, status)
    changes: list[Changes] = field(default_factory=list)
    firing: int = 0
    delivery: Delivery | None = None
    error: str | None = None

    @property
    def exit_status(self) -> int:
        if self.error is not None:
            return EXIT_FAILED
        return EXIT_FIRING if self.firing else EXIT_QUIET


def run_job(services: Services, job: JobConfig) -> JobResult:
    """One run of ``job``: its alerts reconciled and the sinks told, whatever happened."""
    result = JobResult(job.name)
    try:
        if isinstance(job, DriftJob):
            _drift(services, job, result)
        elif isinstance(job, FingerprintsJob):
            _fingerprints(services, job, result)
        else:
            _canary(services, job, result)
    except Exception as exc:  # a failed run is stored and reported, not a crash
        result.error = f"{type(exc).__name__}: {exc}"
        services.progress(f"{job.name}: failed: {result.error}")
        services.progress(traceback.format_exc(limit=3))
    result.firing = services.alerts.firing(job.name)
    result.delivery = services.notifier.deliver()
    for failure in result.delivery.failed or []:
        services.progress(f"alert delivery failed (will retry next run): {failure}")
    return result


def _record(
    services: Services,
    result: JobResult,
    job: JobConfig,
    subject: str,
    work: Callable[[int], tuple[str, dict[str, Any], list[Finding] | None, str | None]],
) -> None:
    """Run ``work(run_id)`` as a stored run; reconcile its findings unless it returns
    None for them (a run that could not conclude leaves open alerts as they are)."""
    runs = services.runs
    run_id = runs.start(job.name, job.kind, subject)
    try:
        status, figures, findings, report = work(run_id)
    except Exception as exc:
        runs.finish(run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        result.runs.append((run_id, subject, "failed"))
        raise
    runs.finish(run_id, status, figures, report_path=report)
    result.runs.append((run_id, subject, status))
    if findings is not None:
        result.changes.append(services.alerts.reconcile(job.name, subject, findings))


# -- drift -------------------------------------------------------------------------------
def drift_spec(job: DriftJob) -> DriftSpec:
    reference: Trailing | Frozen
    if job.frozen is not None:
        reference = Frozen(start=job.frozen.start, end=job.frozen.end)
    else:
        reference = Trailing(days=job.trailing_days)
    return DriftSpec(
        app=job.app,
        model=job.model,
        upstream=job.upstream,
        window=dt.timedelta(hours=job.window_h),
        reference=reference,
        min_requests=job.min_requests,
        alpha=job.alpha,
        embedding_sample=job.embedding_sample,
    )


def drift_findings(job: str, outcome: DriftOutcome) -> list[Finding]:
    findings = []
    for signal in outcome.signals:
        if not signal.drifted:
            continue
        findings.append(
            Finding(
                condition=f"{job}:drift:{outcome.subject}:{signal.name}",
                kind="drift",
                severity="warning",
                subject=outcome.subject,
                summary=(
                    f"drift: {signal.name} of {outcome.subject} changed "
                    f"(effect {signal.effect:.3g} >= {signal.threshold:.3g}, "
                    f"adjusted p {signal.adjusted_p:.2g})"
                ),
                details={
                    "signal": signal.name,
                    "kind": signal.kind,
                    "effect": signal.effect,
                    "threshold": signal.threshold,
                    "p_value": signal.p_value,
                    "adjusted_p": signal.adjusted_p,
                    "reference": signal.reference,
                    "current": signal.current,
                },
            )
        )
    return findings


def _drift(services: Services, job: DriftJob, result: JobResult) -> None:
    spec = drift_spec(job)
    subject = f"{job.app}/{job.model}/{job.upstream}"

    def work(run_id: int) -> tuple[str, dict[str, Any], list[Finding] | None, str | None]:
        outcome = run_drift(
            services.sessions,
            spec,
            now=services.clock(),
            embedder=services.embedder(),
            master_key=services.master_key,
            progress=services.progress,
        )
        report = None
        if outcome.report_html is not None:
            path = Path(services.config.reports_dir) / job.name / f"run-{run_id}.html"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(outcome.report_html, encoding="utf-8")
            report = str(path)
        if outcome.status == "insufficient_data":
            return "insufficient_data", outcome.figures(), None, report
        findings = drift_findings(job.name, outcome)
        return ("alerting" if findings else "ok"), outcome.figures(), findings, report

    _record(services, result, job, subject, work)


# -- fingerprints ------------------------------------------------------------------------
def _fingerprints(services: Services, job: FingerprintsJob, result: JobResult) -> None:
    def work(run_id: int) -> tuple[str, dict[str, Any], list[Finding] | None, str | None]:
        scan = watch_fingerprints(
            services.sessions, job=job.name, clock=services.clock, upstreams=job.upstreams
        )
        for subject, found in scan.changes.items():
            result.changes.append(services.alerts.reconcile(job.name, subject, found))
        services.progress(
            f"{job.name}: {scan.records} new records, "
            f"{sum(len(f) for f in scan.changes.values())} changed identities"
        )
        # Findings were reconciled per upstream model above.
        return ("alerting" if scan.changes else "ok"), scan.figures(), None, None

    _record(services, result, job, "all upstreams", work)


# -- canary ------------------------------------------------------------------------------
def _canary(services: Services, job: CanaryJob, result: JobResult) -> None:
    probe = Probe(
        model=job.model,
        samples=job.samples,
        max_tokens=job.max_tokens,
        temperature=job.temperature,
        logprobs=job.logprobs,
    )
    items = canary_set(job.prompts, job.seed)
    store = CanaryStore(services.sessions, services.clock)

    def work(run_id: int) -> tuple[str, dict[str, Any], list[Finding] | None, str | None]:
        client = services.canary_client()
        try:
            outcome = run_canary(
                job=job.name,
                run_id=run_id,
                items=items,
                probe=probe,
                client=client,
                store=store,
                alpha=job.alpha,
                rng=np.random.default_rng(run_id),
                progress=services.progress,
            )
        finally:
            close = getattr(client, "close", None)
            if close is not None:
                close()
        # A first run, a failed one, or a check its confirmation contradicted concludes
        # nothing about an alert already open.
        concluded = outcome.status in ("ok", "changed")
        findings = outcome.findings if concluded else None
        return outcome.run_status, outcome.figures, findings, None

    _record(services, result, job, job.model, work)
