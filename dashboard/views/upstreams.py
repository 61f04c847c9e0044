"""Upstreams (SREs): per deployment, traffic, error rate, retries and latency
percentiles from the hourly rollup, with a health verdict over the last hour."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from dashboard.queries import traffic
from dashboard.session import require
from dashboard.ui import empty, window_picker
from governance.access import Permission

# Error rate over the last hour at and above which a deployment is degraded or failing.
DEGRADED, FAILING = 0.05, 0.5


def health(frame: pd.DataFrame, configured: list[tuple[str, str]]) -> pd.DataFrame:
    """A verdict per configured deployment from its last hour: idle, healthy, degraded
    or failing."""
    seen = {
        (u, m): row
        for u, m, row in zip(
            frame.get("upstream", []),
            frame.get("deployment model", []),
            frame.to_dict("records"),
            strict=True,
        )
    }
    rows = []
    for upstream, model in configured:
        row = seen.get((upstream, model))
        if row is None or not row["requests"]:
            verdict, rate, requests = "idle", None, 0
        else:
            rate, requests = float(row["error rate"]), int(row["requests"])
            verdict = (
                "failing" if rate >= FAILING else "degraded" if rate >= DEGRADED else "healthy"
            )
        rows.append(
            {
                "upstream": upstream,
                "deployment model": model,
                "health": verdict,
                "requests last hour": requests,
                "error rate last hour": rate,
            }
        )
    return pd.DataFrame(rows)


def render() -> None:
    found, _ = require(Permission.OPS_READ)
    st.title("Upstreams")
    now = found.clock()
    configured = sorted(
        {(d.upstream, d.model) for m in found.settings.models for d in m.deployments}
    )
    last_hour = traffic.by_deployment(found.reads, now - dt.timedelta(hours=1))
    st.subheader("Health (last hour)")
    if configured:
        st.dataframe(health(last_hour, configured), hide_index=True)
    else:
        empty("No deployment is configured (models[].deployments in the configuration).")
    st.subheader("Latency and errors")
    since = window_picker("Window", now, default="Last 24 hours", key="u-window")
    frame = traffic.by_deployment(found.reads, since)
    if frame.empty:
        empty("No upstream traffic in this window.")
        return
    st.caption("Percentiles are the upper bounds of the latency histogram buckets they fall in.")
    st.dataframe(
        frame,
        hide_index=True,
        column_config={
            "error rate": st.column_config.NumberColumn(format="percent"),
            "retried": st.column_config.NumberColumn(format="percent"),
        },
    )
    frame["deployment"] = frame["upstream"] + " / " + frame["deployment model"]
    st.bar_chart(frame, x="deployment", y=["p50 ms", "p90 ms", "p99 ms"], stack=False)


render()
