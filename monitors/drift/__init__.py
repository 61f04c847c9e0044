"""Passive traffic drift: compare a current window of recorded traffic for one (app,
model alias, upstream) with a reference, and say which signals drifted.

    outcome = run_drift(sessions, DriftSpec(app="billing", model="chat-default",
                        upstream="vllm-a"), now=now, embedder=CachedEmbedder(LocalEmbedder()))

Modules: `spec` (what to compare and the decision rule), `frame` (audit store -> pandas),
`texts` (prompt and answer text of stored content), `refusal` (the refusal detector),
`embeddings` (embedders and their cache), `statistics` (Holm, proportions, MMD),
`report` (Evidently), `signals` (per-request signals and their tests), `job` (the run),
`result` (what a run returns).
"""

from monitors.drift.embeddings import CachedEmbedder, Embedder, EndpointEmbedder, LocalEmbedder
from monitors.drift.job import READ_CONTENT, run_drift
from monitors.drift.refusal import is_refusal
from monitors.drift.result import DriftOutcome, SignalResult
from monitors.drift.spec import SIGNALS, DriftSpec, Frozen, Kind, Thresholds, Trailing

__all__ = [
    "READ_CONTENT",
    "SIGNALS",
    "CachedEmbedder",
    "DriftOutcome",
    "DriftSpec",
    "Embedder",
    "EndpointEmbedder",
    "Frozen",
    "Kind",
    "LocalEmbedder",
    "SignalResult",
    "Thresholds",
    "Trailing",
    "is_refusal",
    "run_drift",
]
