"""Spend (budget owners, finance, SREs): cost over time by a dimension, budgets and
their burn-down, top consumers, and the monthly chargeback CSV.

Everything reads the rollups (``spend_daily``, ``usage_counters``), never the records."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from dashboard.queries import spend as queries
from dashboard.services import Services
from dashboard.session import require
from dashboard.ui import empty, money
from governance.access import Permission, Principal
from governance.errors import TollhouseError
from governance.spend.ledger import month_of
from governance.spend.report import (
    DIMENSIONS,
    Dimension,
    daily_spend,
    group_columns,
    report_csv,
    spend_report,
    totals,
)

RANGES = {"Last 30 days": 29, "Last 90 days": 89, "Last 365 days": 364}


def _over_time(found: Services, principal: Principal, today: dt.date) -> None:
    left, right = st.columns(2)
    by = left.radio("By", list(DIMENSIONS), horizontal=True, key="s-by")
    span = right.selectbox("Range", list(RANGES), key="s-range")
    since = today - dt.timedelta(days=RANGES[span])
    series = daily_spend(found.reads, by, since, actor=principal)
    lines = spend_report(found.reads, by, since, actor=principal)
    if not lines:
        empty("No spend recorded in this range.")
        return
    st.metric(f"Total, {span.lower()}", money(totals(lines)))
    frame = pd.DataFrame(
        [{"day": d.day.isoformat(), by: d.line.name, "cost": float(d.line.cost)} for d in series]
    )
    st.bar_chart(frame, x="day", y="cost", color=by, y_label="cost")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    by: line.name,
                    "requests": line.requests,
                    "input tokens": line.input_tokens,
                    "output tokens": line.output_tokens,
                    "cost": float(line.cost),
                    "currency": line.currency,
                    "unpriced": line.unpriced,
                }
                for line in lines
            ]
        ),
        hide_index=True,
    )


def _budgets(found: Services, today: dt.date) -> None:
    st.subheader("Budgets")
    name = found.settings.policy.name
    store = found.policies
    state = store.state(name)
    if state.active is None:
        empty(f"Policy {name!r} has no active version, so no budget applies.")
        return
    try:
        policy = store.load(name, state.active)
    except TollhouseError as exc:
        st.error(str(exc))
        return
    rows = queries.budget_rows(found.reads, policy, today)
    if not rows:
        empty(f"No budget of {name}@{state.active} has use in the current period.")
        return
    table = pd.DataFrame(
        [
            {
                "budget": r.budget.name,
                "scope": r.budget.scope,
                "subject": r.subject if not r.app else f"{r.app} / {r.subject}",
                "period": r.budget.period,
                "used": min(r.fraction, 1.0),
                "spent": float(r.spent_cost),
                "limit": None if r.budget.cost is None else float(r.budget.cost),
                "tokens": r.spent_tokens,
                "token limit": r.budget.tokens,
                "state": r.state,
                "resets": r.resets_at,
            }
            for r in rows
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "used": st.column_config.ProgressColumn("used", min_value=0.0, max_value=1.0),
        },
    )
    labels = [f"{r.budget.name}: {r.subject}" for r in rows]
    chosen = st.selectbox("Burn-down of", labels, key="s-budget")
    row = rows[labels.index(chosen)] if chosen in labels else rows[0]
    series = queries.burn_down(found.reads, row, today)
    if series.empty:
        empty("No daily use recorded for this budget yet.")
    else:
        st.line_chart(series, x="day", y=["used", "limit"], y_label="share of the limit")


def _top(found: Services, today: dt.date) -> None:
    st.subheader("Top consumers this month")
    tabs = st.tabs(["Apps", "Teams", "End users", "Keys"])
    for tab, scope in zip(tabs, ["app", "team", "end_user", "key"], strict=True):
        with tab:
            frame = queries.top_consumers(found.reads, scope, month_of(today))
            if frame.empty:
                empty(f"No {scope.replace('_', ' ')} use this month.")
            else:
                frame["cost"] = frame["cost"].map(float)
                st.dataframe(frame, hide_index=True)


def _chargeback(found: Services, principal: Principal, today: dt.date) -> None:
    st.subheader("Chargeback")
    this_month = month_of(today)
    months = [this_month]
    for _ in range(11):
        months.append(month_of(months[-1] - dt.timedelta(days=1)))
    left, right = st.columns(2)
    month = left.selectbox("Month", months, format_func=lambda d: d.strftime("%Y-%m"))
    by: Dimension = (
        "team"
        if right.radio("Per", ["team", "app"], horizontal=True, key="c-by") == "team"
        else "app"
    )
    assert month is not None
    last_day = month_of(month + dt.timedelta(days=32)) - dt.timedelta(days=1)
    lines = spend_report(found.reads, by, month, last_day, actor=principal)
    st.download_button(
        f"Download chargeback CSV ({len(lines)} lines)",
        report_csv(group_columns(by), lines),
        file_name=f"chargeback-{by}-{month:%Y-%m}.csv",
        mime="text/csv",
        key="c-dl",
    )


def render() -> None:
    found, principal = require(Permission.SPEND_READ)
    st.title("Spend")
    today = found.clock().date()
    _over_time(found, principal, today)
    _budgets(found, today)
    _top(found, today)
    _chargeback(found, principal, today)


render()
