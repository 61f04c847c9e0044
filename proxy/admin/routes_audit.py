"""``/admin/audit/...``: records, content, export, verification, checkpoints, erasure."""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.responses import FileResponse

from governance.access import Permission
from governance.audit.checkpoint import iter_checkpoints, key_id_of, load_signing_key
from governance.audit.reader import RecordFilter
from governance.audit.verify import verify_trail
from governance.errors import InvalidRequestError
from proxy.admin.state import Acting, State
from proxy.admin.views import jsonable

router = APIRouter(prefix="/audit", tags=["audit"])


COUNT_CAP = 100_000  # counting stops here: a broad filter must not scan millions of rows


class RecordPage(BaseModel):
    total: int = Field(description=f"records matching, counted up to {COUNT_CAP:,}")
    total_capped: bool = Field(description="more records match than ``total`` says")
    limit: int
    offset: int
    records: list[dict[str, Any]]


class ForgetRequest(BaseModel):
    app: str | None = None
    end_user: str | None = None


class ForgetResult(BaseModel):
    keys_destroyed: int
    plaintext_deleted: int


class PurgeRequest(BaseModel):
    older_than_days: int = Field(gt=0)


class PurgeResult(BaseModel):
    content_deleted: int


class CheckpointOut(BaseModel):
    id: int
    created_at: dt.datetime
    key_id: str
    previous: str
    digest: str
    body: str
    signature: str


class VerifyResult(BaseModel):
    ok: bool
    chains: int
    records: int
    checkpoints: int
    unsigned_records: int
    problems: list[str]


@router.get("/records", response_model=RecordPage, summary="Record metadata (audit:read)")
async def list_records(
    state: State,
    actor: Acting,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    app: str | None = None,
    team: str | None = None,
    end_user: str | None = None,
    model: str | None = None,
    upstream: str | None = None,
    destination: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    policy_version: int | None = None,
    action: Literal["allow", "route", "block"] | None = None,
    pii_entity: str | None = None,
    order: str = "-recorded_at",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> RecordPage:
    where = RecordFilter(
        since=since,
        until=until,
        app=app,
        team=team,
        end_user=end_user,
        model=model,
        upstream=upstream,
        destination=destination,
        kind=kind,
        status=status,
        policy_version=policy_version,
        action=action,
        pii_entity=pii_entity,
    )
    rows = await asyncio.to_thread(
        state.reader.query, actor, where, order=order, limit=limit, offset=offset
    )
    total, capped = await asyncio.to_thread(state.reader.count, actor, where, COUNT_CAP)
    return RecordPage(
        total=total,
        total_capped=capped,
        limit=limit,
        offset=offset,
        records=[jsonable(r) for r in rows],
    )


@router.get(
    "/records/{request_id}",
    summary="One request's records with content (audit:content; the read is audited)",
)
async def show_request(state: State, actor: Acting, request_id: str) -> list[dict[str, Any]]:
    shown = await asyncio.to_thread(state.reader.show, actor, request_id)
    return [jsonable(record) for record in shown]


@router.get(
    "/export",
    summary="Export records as JSON Lines or CSV (audit:read; content: audit:content)",
    response_class=FileResponse,
)
async def export(
    state: State,
    actor: Acting,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    app: str | None = None,
    format: Literal["jsonl", "csv"] = "jsonl",
    content: bool = False,
) -> FileResponse:
    """The file is the body; its manifest (count, SHA-256, covering checkpoint) is in the
    ``X-Tollhouse-Manifest`` header as compact JSON. The export is itself audited."""
    actor.require(Permission.AUDIT_READ)
    work = Path(tempfile.mkdtemp(prefix="tollhouse-export-"))
    path = work / f"audit-export.{format}"
    where = RecordFilter(since=since, until=until, app=app)
    manifest = await asyncio.to_thread(
        state.reader.export, actor, where, path, fmt=format, content=content
    )
    return FileResponse(
        path,
        media_type="text/csv" if format == "csv" else "application/x-ndjson",
        filename=path.name,
        headers={"X-Tollhouse-Manifest": orjson.dumps(manifest.document).decode("utf-8")},
        background=BackgroundTask(_remove, work),
    )


def _remove(work: Path) -> None:
    for child in work.iterdir():
        child.unlink()
    work.rmdir()


@router.get("/verify", response_model=VerifyResult, summary="Verify the trail (audit:verify)")
async def verify(state: State, actor: Acting, since: dt.datetime | None = None) -> VerifyResult:
    actor.require(Permission.AUDIT_VERIFY)
    trusted = {}
    if state.settings.audit.signing_key_file:
        public = load_signing_key(state.settings.audit.signing_key_file).public_key()
        trusted[key_id_of(public)] = public
    report = await asyncio.to_thread(verify_trail, state.engine, trusted, since=since)
    return VerifyResult(
        ok=report.ok,
        chains=report.chains,
        records=report.records,
        checkpoints=report.checkpoints,
        unsigned_records=report.unsigned_records,
        problems=[p.describe() for p in report.problems],
    )


@router.get(
    "/checkpoints", response_model=list[CheckpointOut], summary="Signed checkpoints (audit:verify)"
)
async def checkpoints(state: State, actor: Acting) -> list[CheckpointOut]:
    actor.require(Permission.AUDIT_VERIFY)
    stored = await asyncio.to_thread(lambda: list(iter_checkpoints(state.engine)))
    return [CheckpointOut.model_validate(c.as_json()) for c in stored]


@router.post(
    "/checkpoints",
    response_model=CheckpointOut | None,
    summary="Sign the chain heads now (audit:manage)",
)
async def create_checkpoint(state: State, actor: Acting) -> CheckpointOut | None:
    actor.require(Permission.AUDIT_MANAGE)
    if state.checkpointer is None:
        raise InvalidRequestError("audit.signing_key_file is not configured; nothing can sign")
    made = await asyncio.to_thread(state.checkpointer.write)
    return None if made is None else CheckpointOut.model_validate(made.as_json())


@router.post(
    "/forget", response_model=ForgetResult, summary="Crypto-shred an app's or a user's content"
)
async def forget(state: State, actor: Acting, body: ForgetRequest) -> ForgetResult:
    """Needs audit:manage. Destroys data keys; the chains still verify."""
    done = await asyncio.to_thread(
        lambda: state.retention.forget(actor, app=body.app, end_user=body.end_user)
    )
    return ForgetResult(
        keys_destroyed=done.keys_destroyed, plaintext_deleted=done.plaintext_deleted
    )


@router.post("/purge", response_model=PurgeResult, summary="Drop content older than a cut-off")
async def purge(state: State, actor: Acting, body: PurgeRequest) -> PurgeResult:
    """Needs audit:manage. Content digests stay in the chains, which still verify."""
    deleted = await asyncio.to_thread(
        state.retention.purge, actor, dt.timedelta(days=body.older_than_days)
    )
    return PurgeResult(content_deleted=deleted)
