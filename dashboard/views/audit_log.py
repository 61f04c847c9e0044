"""Audit log (compliance officers): filter, page and sort the records in the database,
open one request's decision trace and stored content, check the chain, export.

Nothing here loads the table: a page is one indexed query (``LIMIT``/``OFFSET``), the
count stops at a cap, and an export streams to a file. Opening content and exporting
are audited by `AuditReader` (an ``admin`` record each, before anything is shown)."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.queries import audit as queries
from dashboard.services import Services
from dashboard.session import require
from dashboard.ui import WINDOWS, empty, utc
from governance.access import Permission, Principal
from governance.audit.reader import ExportFormat, RecordFilter
from governance.audit.verify import verify_trail
from governance.errors import TollhouseError

COUNT_CAP = 100_000
SHOWN = [
    "recorded_at",
    "request_id",
    "kind",
    "app",
    "team",
    "end_user",
    "requested_model",
    "upstream",
    "destination",
    "status",
    "policy_version",
    "input_tokens",
    "output_tokens",
    "cost",
    "latency_ms",
]
ORDERS = {
    "Newest first": "-recorded_at",
    "Oldest first": "recorded_at",
    "Slowest first": "-latency_ms",
    "Most expensive first": "-cost",
    "App": "app",
    "Model": "requested_model",
}
ANY = "(any)"
FILTER_STATE = "audit.filter"


def _pick(label: str, options: list[Any], key: str) -> Any:
    choice = st.selectbox(label, [ANY, *options], key=key)
    return None if choice == ANY else choice


@st.cache_data(ttl=300, show_spinner=False)
def _choices(_found: Services, database: str, since: dt.date) -> queries.FilterChoices:
    """The drop-down values, recomputed at most every five minutes per database (they
    scan the rollups and a month of tags)."""
    return queries.filter_choices(_found.reads, dt.datetime.combine(since, dt.time(), dt.UTC))


def _filters(found: Services, now: dt.datetime) -> RecordFilter:
    since = (now - dt.timedelta(days=30)).date()
    choices = _choices(found, found.settings.database_url, since)
    with st.form("audit-filters"):
        row = st.columns(4)
        window = row[0].selectbox("Time range", [*WINDOWS, "Custom"], index=1, key="f-window")
        since_day = row[1].date_input("From (UTC day)", value=now.date(), key="f-from")
        until_day = row[2].date_input("To (UTC day, inclusive)", value=now.date(), key="f-to")
        kind = row[3].selectbox(
            "Record kind", ["completed", "admitted", "admin", ANY], key="f-kind"
        )
        row = st.columns(4)
        app = _pick_in(row[0], "App", choices.apps, "f-app")
        team = _pick_in(row[1], "Team", choices.teams, "f-team")
        end_user = row[2].text_input("End user", key="f-user").strip() or None
        model = _pick_in(row[3], "Model", choices.models, "f-model")
        row = st.columns(4)
        upstream = _pick_in(row[0], "Upstream", choices.upstreams, "f-upstream")
        destination = _pick_in(row[1], "Destination", list(queries.DESTINATIONS), "f-dest")
        action = _pick_in(row[2], "Decision", list(queries.ACTIONS), "f-action")
        entity = _pick_in(row[3], "PII entity type", choices.pii_entities, "f-pii")
        row = st.columns(4)
        version = _pick_in(row[0], "Policy version", choices.policy_versions, "f-version")
        status = _pick_in(row[1], "Status", list(queries.STATUSES), "f-status")
        request_id = row[2].text_input("Request id", key="f-request").strip() or None
        st.form_submit_button("Apply filters", type="primary")
    if window == "Custom":
        since = dt.datetime.combine(since_day, dt.time(), dt.UTC)
        until: dt.datetime | None = dt.datetime.combine(
            until_day, dt.time(), dt.UTC
        ) + dt.timedelta(days=1)
    else:
        since, until = now - WINDOWS[window], None
    return RecordFilter(
        since=since,
        until=until,
        app=app,
        team=team,
        end_user=end_user,
        model=model,
        upstream=upstream,
        destination=destination,
        kind=None if kind == ANY else kind,
        status=status,
        policy_version=version,
        request_id=request_id,
        action=action,
        pii_entity=entity,
    )


def _pick_in(container: Any, label: str, options: list[Any], key: str) -> Any:
    with container:
        return _pick(label, options, key)


def _chain_status(found: Services, principal: Principal, now: dt.datetime) -> None:
    state = queries.trail_state(found.reads)
    summary = (
        f"{len(state.chains)} chains, {state.records:,} records, {state.unsigned:,} not yet "
        f"signed; last checkpoint {utc(state.last_checkpoint_at)}"
    )
    with st.expander(f"Chain status: {summary}"):
        if state.chains:
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "chain": c.chain_id,
                            "kind": c.kind,
                            "writer": c.writer,
                            "records": c.head_seq,
                            "signed up to": c.signed_seq,
                            "closed": c.closed,
                        }
                        for c in state.chains
                    ]
                ),
                hide_index=True,
            )
        scope = st.selectbox(
            "Verify", ["Last 24 hours", "Last 7 days", "Everything"], key="v-scope"
        )
        if st.button("Verify the chains now", key="verify"):
            since = {
                "Last 24 hours": now - dt.timedelta(days=1),
                "Last 7 days": now - dt.timedelta(days=7),
            }.get(scope)
            with st.spinner("Recomputing hashes and checking signatures…"):
                report = verify_trail(found.read_engine, found.trusted, since=since)
            if report.ok:
                st.success(
                    f"Verified {report.records:,} records in {report.chains} chains and "
                    f"{report.checkpoints} checkpoints: no problem found."
                )
            else:
                st.error(
                    f"{len(report.problems)} problems in {report.records:,} records: "
                    + "; ".join(p.describe() for p in report.problems[:5])
                )
            if not found.trusted:
                st.warning("No trusted public key is configured: signatures were not checked.")


def _detail(found: Services, principal: Principal, request_id: str) -> None:
    st.subheader(f"Request {request_id}")
    records = queries.request_records(found.reads, request_id)
    if not records:
        empty("No records for this request.")
        return
    for record in records:
        with st.expander(f"{record['kind']} · {utc(record['recorded_at'])} · {record['status']}"):
            left, right = st.columns(2)
            left.markdown("**Decision trace**")
            left.json(record.get("decision") or {})
            if record.get("shadow"):
                left.markdown("**Shadow decision**")
                left.json(record["shadow"])
            right.markdown("**Attempts**")
            right.json(record.get("attempts") or [])
            where = f"chain {record['chain_id']} seq {record['seq']}"
            right.caption(f"{where} · hash {record['record_hash'][:16]}…")
    if not principal.can(Permission.AUDIT_CONTENT):
        st.caption("Your roles do not include reading stored content.")
        return
    opened_key = f"content:{request_id}"
    if st.button("Open stored content (this read is audited)", key=f"open-{request_id}"):
        try:
            st.session_state[opened_key] = found.audited.show(principal, request_id)
        except TollhouseError as exc:
            st.error(str(exc))
    for record in st.session_state.get(opened_key, []):
        content = record.get("content") or {}
        st.markdown(f"**{record['kind']}** content: `{content.get('status')}`")
        if content.get("status") == "present":
            st.json({k: v for k, v in content.items() if k != "status"})


def _export(found: Services, principal: Principal, where: RecordFilter) -> None:
    with st.expander("Export the filtered records"):
        fmt: ExportFormat = (
            "jsonl"
            if st.radio("Format", ["csv", "jsonl"], horizontal=True, key="x-format") == "jsonl"
            else "csv"
        )
        content = False
        if principal.can(Permission.AUDIT_CONTENT):
            content = st.checkbox("Include stored content", key="x-content")
        if st.button("Prepare export (audited)", key="x-go"):
            limit = found.settings.dashboard.export_max_records
            _, capped = found.records.count(principal, where, cap=limit)
            if capped:
                st.error(
                    f"More than {limit:,} records match; narrow the filters or use "
                    "`tollhouse audit export` for bulk exports."
                )
                return
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / f"audit-export.{fmt}"
                manifest = found.audited.export(principal, where, path, fmt=fmt, content=content)
                st.session_state["x-data"] = (path.name, path.read_bytes())
                st.session_state["x-manifest"] = (
                    manifest.path.name,
                    manifest.path.read_bytes(),
                )
            st.success(f"Exported {manifest.count:,} records (SHA-256 {manifest.sha256[:16]}…).")
        if "x-data" in st.session_state:
            name, data = st.session_state["x-data"]
            st.download_button("Download records", data, file_name=name, key="x-dl")
            name, data = st.session_state["x-manifest"]
            st.download_button("Download manifest", data, file_name=name, key="x-dl-manifest")


def render() -> None:
    found, principal = require(Permission.AUDIT_READ)
    st.title("Audit log")
    now = found.clock()
    if principal.can(Permission.AUDIT_VERIFY):
        _chain_status(found, principal, now)
    where = _filters(found, now)
    top = st.columns([2, 1, 1])
    order = top[0].selectbox("Sort", list(ORDERS), key="sort")
    page_size = found.settings.dashboard.page_size
    count, capped = found.records.count(principal, where, cap=COUNT_CAP)
    pages = max(1, -(-count // page_size))
    page = int(top[1].number_input("Page", min_value=1, max_value=pages, value=1, key="page"))
    top[2].metric("Matching records", f"{count:,}{'+' if capped else ''}")
    rows = found.records.query(
        principal, where, order=ORDERS[order], limit=page_size, offset=(page - 1) * page_size
    )
    if not rows:
        empty("No audit records match these filters.")
        return
    frame = pd.DataFrame(rows)[SHOWN]
    frame["cost"] = frame["cost"].map(lambda c: None if c is None else float(c))
    picked = st.dataframe(
        frame,
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="records",
    )
    _export(found, principal, where)
    selection = getattr(picked, "selection", None)
    chosen = list(getattr(selection, "rows", []) or [])
    request_id = str(frame.iloc[chosen[0]]["request_id"]) if chosen else where.request_id
    if request_id:
        _detail(found, principal, request_id)
    else:
        st.caption("Select a row to see its decision trace.")


render()
