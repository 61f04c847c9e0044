"""Policies (authors, approvers, auditors): the versions of a policy with their approvals,
a side-by-side comparison of two versions, the activation history, and what a shadow
version would have decided differently on real traffic."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from dashboard.queries import policies as queries
from dashboard.services import Services
from dashboard.session import require
from dashboard.ui import empty, window_picker
from governance.access import Permission
from governance.policy.diff import render as render_policy
from governance.policy.diff import unified
from governance.policy.report import shadow_report
from governance.policy.store import PolicyStore


def _compare(store: PolicyStore, name: str, versions: list[int]) -> None:
    st.subheader("Compare versions")
    if len(versions) < 2:
        empty("Only one version is published; there is nothing to compare yet.")
        return
    left, right = st.columns(2)
    before = left.selectbox("Before", versions, index=1, key="p-before")
    after = right.selectbox("After", versions, index=0, key="p-after")
    if before is None or after is None:
        return
    old, new = store.get(name, int(before)), store.get(name, int(after))
    diff = unified(old.body, new.body, f"{name}@{before}", f"{name}@{after}")
    if not diff:
        st.success("The two versions are the same document.")
        return
    left.code(render_policy(old.body), language="yaml")
    right.code(render_policy(new.body), language="yaml")
    with st.expander("Unified diff", expanded=True):
        st.code(diff, language="diff")


def _shadow(found: Services, name: str, now: dt.datetime) -> None:
    st.subheader("Shadow-mode differences")
    since = window_picker("Requests in", now, default="Last 24 hours", key="p-window")
    report = shadow_report(found.reads, name, since)
    if report.evaluated == 0:
        empty("No request was evaluated by a shadow version in this window.")
        return
    cols = st.columns(3)
    cols[0].metric("Evaluated", f"{report.evaluated:,}")
    cols[1].metric(
        "Would change", f"{report.changed:,}", help="Different action, model or destinations."
    )
    cols[2].metric("Shadow failed", f"{report.failed:,}")
    st.dataframe(
        pd.DataFrame(
            [
                {"active": a, "shadow": s, "requests": n}
                for (a, s), n in sorted(report.transitions.items())
            ]
        ),
        hide_index=True,
    )
    st.dataframe(
        pd.DataFrame(
            [
                {"app": app, "evaluated": c.evaluated, "would change": c.changed}
                for app, c in sorted(report.by_app.items())
            ]
        ),
        hide_index=True,
    )
    if report.examples:
        st.caption("Changed requests (open them in the audit log): " + ", ".join(report.examples))


def render() -> None:
    found, _ = require(Permission.POLICY_READ)
    st.title("Policies")
    names = queries.policy_names(found.reads)
    if not names:
        empty("No policy has been published (`tollhouse policy publish FILE`).")
        return
    configured = found.settings.policy.name
    name = st.selectbox(
        "Policy", names, index=names.index(configured) if configured in names else 0
    )
    assert name is not None
    store = found.policies
    state = store.state(name)
    st.caption(
        f"Active version: {state.active or 'none'} · shadow: {state.shadow or 'none'} · "
        f"four eyes: {'on' if store.four_eyes else 'off'}"
    )
    frame = queries.versions_frame(store, name)
    st.subheader("Versions")
    st.dataframe(frame, hide_index=True)
    _compare(store, name, [int(v) for v in frame["version"]])
    st.subheader("Activation history")
    history = queries.history_frame(store, name)
    if history.empty:
        empty("No version of this policy has been activated.")
    else:
        st.dataframe(history, hide_index=True)
    _shadow(found, name, found.clock())


render()
