"""Drift and alerts (SREs): monitor runs over time, each drift signal's effect against its
threshold, a run's Evidently report, the alerts with acknowledgement, and every model
identity each upstream has answered with."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.queries import monitors as queries
from dashboard.services import Services
from dashboard.session import require
from dashboard.ui import empty, utc, window_picker
from governance.access import Permission, Principal
from governance.errors import TollhouseError
from monitors.alerts import AlertBook


def _runs(found: Services, now: dt.datetime) -> pd.DataFrame:
    st.subheader("Monitor runs")
    since = window_picker("Runs in", now, default="Last 7 days", key="d-window")
    frame = queries.runs(found.reads, since)
    if frame.empty:
        empty("No monitor run in this window (`tollhouse monitors run` or `schedule`).")
        return frame
    per_day = (
        frame.assign(day=pd.to_datetime(frame["started"], utc=True).dt.floor("D"))
        .groupby(["day", "status"], as_index=False)
        .size()
    )
    st.bar_chart(per_day, x="day", y="size", color="status", y_label="runs")
    st.dataframe(frame, hide_index=True)
    return frame


def _signals(found: Services, frame: pd.DataFrame, now: dt.datetime) -> None:
    drift = frame[frame["kind"] == "drift"]
    if drift.empty:
        return
    st.subheader("Drift signals")
    pairs = sorted(
        {(job, subject) for job, subject in zip(drift["job"], drift["subject"], strict=True)}
    )
    labels = [f"{job} · {subject}" for job, subject in pairs]
    chosen = st.selectbox("Job and subject", labels, key="d-subject")
    job, subject = pairs[labels.index(chosen)] if chosen in labels else pairs[0]
    series = queries.signal_series(found.reads, job, subject, now - dt.timedelta(days=90))
    if series.empty:
        empty("These runs tested no signal (too little traffic in a window).")
    else:
        st.caption(
            "Effect size of each signal per run; a signal drifts when its effect reaches its "
            "threshold and its Holm-adjusted p-value is below alpha."
        )
        st.line_chart(series, x="started", y="effect", color="signal", y_label="effect size")
        latest = series[series["started"] == series["started"].max()]
        st.dataframe(latest.drop(columns="started"), hide_index=True)
    with_report = drift[drift["job"] == job]
    run_ids = [int(i) for i in with_report["id"]]
    run_id = st.selectbox("Evidently report of run", run_ids, key="d-run")
    row = queries.run(found.reads, int(run_id)) if run_id is not None else None
    reports = Path(found.settings.monitors.reports_dir)
    report = None if row is None else queries.report_file(row, reports)
    if report is None:
        empty("This run has no stored report (insufficient data, or the file was removed).")
    else:
        # Written by Tollhouse's own drift job (figures only, no prompt or answer text);
        # it runs its own scripts (the charts), so it is embedded as a page of its own.
        st.iframe(report, height=900)


def _alerts(found: Services, principal: Principal, now: dt.datetime) -> None:
    st.subheader("Alerts")
    open_only = st.toggle("Open alerts only", value=True, key="a-open")
    frame = queries.alerts(found.reads, open_only=open_only, since=now - dt.timedelta(days=30))
    if frame.empty:
        empty("No alerts." if open_only else "No alerts in the last 30 days.")
        return
    st.dataframe(frame, hide_index=True)
    if not principal.can(Permission.MONITORS_MANAGE):
        st.caption("Acknowledging alerts needs the `monitors:manage` permission (SRE, admin).")
        return
    pending = frame[frame["acknowledged by"].isna()]
    if pending.empty:
        return
    with st.form("ack"):
        alert_id = st.selectbox(
            "Acknowledge alert",
            [int(i) for i in pending["id"]],
            format_func=lambda i: f"#{i}: {pending.set_index('id').loc[i, 'summary']}",
        )
        if st.form_submit_button("Acknowledge") and alert_id is not None:
            try:
                alert = AlertBook(found.writes, clock=found.clock).acknowledge(
                    int(alert_id), principal.name or principal.prefix
                )
            except TollhouseError as exc:
                st.error(str(exc))
            else:
                state = "resolved" if alert.resolved_at else "still firing"
                st.success(f"Alert {alert.id} acknowledged ({state}).")


def _fingerprints(found: Services) -> None:
    st.subheader("Model fingerprints")
    frame = queries.fingerprints(found.reads)
    if frame.empty:
        empty("No model identity recorded yet (the fingerprints job fills this in).")
        return
    upstreams = sorted(set(frame["upstream"]))
    upstream = st.selectbox("Upstream", upstreams, key="f-upstream")
    shown = frame[frame["upstream"] == upstream]
    changes = shown.groupby("deployment model").size()
    for model, count in changes.items():
        if count > 1:
            st.warning(f"{upstream} / {model} has answered as {count} different identities.")
    st.dataframe(shown.drop(columns="upstream"), hide_index=True)
    st.caption(f"Latest: {utc(pd.Timestamp(shown['last seen'].max()).to_pydatetime())}")


def render() -> None:
    found, principal = require(Permission.OPS_READ)
    st.title("Drift and alerts")
    now = found.clock()
    _alerts(found, principal, now)
    frame = _runs(found, now)
    if not frame.empty:
        _signals(found, frame, now)
    _fingerprints(found)


render()
