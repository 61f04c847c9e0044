"""The audit store as pandas frames: one row per completed request of a subject in a window.

Only ``completed`` records count (one per request, with its outcome, usage, latency
and answer). A window can be large (100k requests a day); it is read in one streamed
query of the columns needed, and beyond ``max_rows`` as a systematic sample (every k-th
record id), which SQLite and PostgreSQL both evaluate in the query.

Answers are opened as `governance.audit.reader.AuditReader` opens them: plaintext or
AES-GCM sealed under the app's data key (`KeyRing`). Content that is absent (the policy
kept none, or it was purged), shredded, or sealed under a key this process cannot open
leaves the request without text; the caller decides what that means for text signals.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import Connection, Select, Text, and_, func, select, type_coerce
from sqlalchemy.orm import Session

from governance.audit.opened import Opened, open_content
from governance.audit.vault import KeyRing
from governance.db.models import AuditContent, AuditRecord
from monitors.drift.spec import DriftSpec, Window
from monitors.drift.texts import prompt_text, response_text

_S = TypeVar("_S", bound=Select[*tuple[Any, ...]])
_IN_CHUNK = 500  # request ids per IN (...) list

COLUMNS = (
    "request_id",
    "ok",
    "error",
    "stream",
    "input_tokens",
    "output_tokens",
    "latency_ms",
    "ttft_ms",
    "finish_reason",
    "pii",
    "response",
)


@dataclass(frozen=True, slots=True)
class WindowFrame:
    """The requests of one window. ``matched`` counts every completed record in the
    window; ``frame`` holds them all, or every ``stride``-th when there were more than
    ``max_rows``. ``content`` counts answers opened; ``unreadable`` those that could not
    be (another master key, none configured, failed authentication)."""

    frame: pd.DataFrame
    matched: int
    stride: int
    content: int
    unreadable: int

    @property
    def n(self) -> int:
        return len(self.frame)


def _open_row(ring: KeyRing, connection: Connection, row: Any) -> Opened:
    """Open the content of a row selected with the record's and its content's columns."""
    return open_content(
        ring,
        connection,
        chain_id=row.chain_id,
        seq=row.seq,
        digest=row.content_digest,
        key_id=row.content_key_id,
        encryption=row.encryption,
        body=row.body,
    )


def _subject(query: _S, spec: DriftSpec, window: Window, kind: str) -> _S:
    r = AuditRecord
    return query.where(
        r.kind == kind,
        r.app == spec.app,
        r.requested_model == spec.model,
        r.upstream == spec.upstream,
        r.recorded_at >= window[0],
        r.recorded_at < window[1],
    )


def _with_content(query: _S) -> _S:
    return query.outerjoin(
        AuditContent,
        and_(AuditContent.chain_id == AuditRecord.chain_id, AuditContent.seq == AuditRecord.seq),
    )


def _json(value: Any) -> Any:
    """A JSON column's value: parsed already (PostgreSQL's driver) or stored text."""
    if isinstance(value, str | bytes):
        return orjson.loads(value)
    return value


def _finish(reasons: Any) -> str | None:
    """A request's finish reasons as one category (``stop``; ``length+stop`` for n>1)."""
    if not isinstance(reasons, list) or not reasons:
        return None
    return "+".join(sorted({str(r) for r in reasons if r is not None})) or None


def count_window(session: Session, spec: DriftSpec, window: Window) -> int:
    """How many completed requests of ``spec``'s subject fall in ``window``."""
    query = _subject(select(func.count()).select_from(AuditRecord), spec, window, "completed")
    return int(session.scalar(query) or 0)


def read_window(
    session: Session, spec: DriftSpec, window: Window, ring: KeyRing, *, texts: bool
) -> WindowFrame:
    """The completed requests of ``spec``'s subject in ``window``; answers opened only
    when ``texts`` (reading content is privileged: the caller audits it)."""
    r = AuditRecord
    matched = count_window(session, spec, window)
    stride = max(1, math.ceil(matched / spec.max_rows))
    columns: list[Any] = [
        r.request_id,
        r.chain_id,
        r.seq,
        r.status,
        r.stream,
        r.input_tokens,
        r.output_tokens,
        r.latency_ms,
        r.ttft_ms,
        # JSON as stored text where the driver returns text (SQLite), parsed by orjson:
        # several times faster than the JSON type's json.loads over 100k rows.
        type_coerce(r.finish_reasons, Text).label("finish_reasons"),
        type_coerce(r.decision, Text).label("decision"),
        r.content_digest,
        r.content_key_id,
    ]
    if texts:
        columns += [AuditContent.encryption, AuditContent.body]
    query = _subject(select(*columns), spec, window, "completed")
    if texts:
        query = _with_content(query)
    if stride > 1:
        query = query.where(r.id % stride == 0)
    query = query.order_by(r.id)  # a stable order: the same window gives the same sample
    data: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    opened = unreadable = 0
    connection = session.connection()
    for row in session.execute(query.execution_options(yield_per=5000)):
        ok = row.status == "ok"
        data["request_id"].append(row.request_id)
        data["ok"].append(ok)
        data["error"].append(not ok)
        data["stream"].append(bool(row.stream))
        data["input_tokens"].append(row.input_tokens)
        data["output_tokens"].append(row.output_tokens)
        data["latency_ms"].append(row.latency_ms)
        data["ttft_ms"].append(row.ttft_ms)
        data["finish_reason"].append(_finish(_json(row.finish_reasons)))
        decision = _json(row.decision)
        decision = decision if isinstance(decision, dict) else {}
        pii = decision.get("pii")
        data["pii"].append(pii if isinstance(pii, dict) else {})
        answer: str | None = None
        if texts and ok:
            content = _open_row(ring, connection, row)
            if content.status == "present" and content.document is not None:
                opened += 1
                answer = response_text(content.document.get("response"))
            elif content.status == "unreadable":
                unreadable += 1
        data["response"].append(answer)
    frame = pd.DataFrame(data, columns=list(COLUMNS))
    for name in ("input_tokens", "output_tokens", "latency_ms", "ttft_ms"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(np.float64)
    return WindowFrame(frame, matched, stride, opened, unreadable)


def read_prompts(
    session: Session, spec: DriftSpec, request_ids: Iterable[str], ring: KeyRing
) -> dict[str, str]:
    """The prompt text of each request that has one, from its ``admitted`` record."""
    r = AuditRecord
    ids: Sequence[str] = list(dict.fromkeys(request_ids))
    connection = session.connection()
    prompts: dict[str, str] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        query = _with_content(
            select(
                r.request_id,
                r.chain_id,
                r.seq,
                r.content_digest,
                r.content_key_id,
                AuditContent.encryption,
                AuditContent.body,
            )
        ).where(r.kind == "admitted", r.app == spec.app, r.request_id.in_(chunk))
        for row in session.execute(query):
            content = _open_row(ring, connection, row)
            if content.status == "present" and content.document is not None:
                text = prompt_text(content.document.get("request"))
                if text:
                    prompts[row.request_id] = text
    return prompts
