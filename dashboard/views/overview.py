"""Overview: traffic, spend, alerts and the audit chain at a glance, each with a trend.

Each section shows only what the signed-in principal may read; the others say so."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from dashboard.queries import audit as audit_queries
from dashboard.queries import monitors as monitor_queries
from dashboard.queries import traffic
from dashboard.services import Services
from dashboard.session import current_principal, deny
from dashboard.session import services as get_services
from dashboard.ui import empty, money, utc
from governance.access import Permission, Principal
from governance.spend.ledger import month_of
from governance.spend.report import daily_spend, spend_report, totals


def _traffic(found: Services, now: dt.datetime) -> None:
    st.subheader("Traffic")
    hours = traffic.hourly(found.reads, now - dt.timedelta(days=14))
    if hours.empty:
        empty("No completed requests in the last 14 days.")
        return
    days = traffic.daily(hours).set_index("day")
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = today - dt.timedelta(days=1)

    def on(day: dt.datetime, column: str) -> int:
        stamp = day.astimezone(dt.UTC)
        return int(days[column].get(stamp, 0)) if not days.empty else 0

    cols = st.columns(4)
    for col, (label, column) in zip(
        cols,
        [
            ("Requests today", "requests"),
            ("Refused today", "refused"),
            ("Redacted today", "redacted"),
            ("Upstream errors today", "errors"),
        ],
        strict=True,
    ):
        col.metric(
            label,
            f"{on(today, column):,}",
            delta=on(today, column) - on(yesterday, column),
            delta_color="off" if column == "requests" else "inverse",
            help="Change against yesterday (UTC days).",
        )
    st.line_chart(
        days[["requests", "refused", "redacted", "errors"]],
        x_label="UTC day",
        y_label="requests",
    )


def _spend(found: Services, principal: Principal, now: dt.datetime) -> None:
    st.subheader("Spend")
    today = now.date()
    month = month_of(today)
    today_lines = totals(spend_report(found.reads, "destination", today, actor=principal))
    month_lines = totals(spend_report(found.reads, "destination", month, actor=principal))
    series = daily_spend(found.reads, "destination", today - dt.timedelta(days=29), actor=principal)
    if not month_lines and not series:
        empty("No spend recorded in the last 30 days.")
        return
    left, right = st.columns(2)
    left.metric("Spend today (UTC)", money(today_lines))
    right.metric("Spend this month", money(month_lines))
    if series:
        frame = pd.DataFrame(
            [
                {
                    "day": d.day.isoformat(),
                    "destination": d.line.group[0],
                    "cost": float(d.line.cost),
                }
                for d in series
            ]
        )
        st.bar_chart(frame, x="day", y="cost", color="destination", y_label="cost")


def _alerts(found: Services, now: dt.datetime) -> None:
    st.subheader("Alerts")
    firing = monitor_queries.alerts(found.reads, open_only=True, since=now)
    st.metric("Firing alerts", len(firing))
    if firing.empty:
        st.success("Nothing is firing.", icon=":material/check_circle:")
    else:
        st.dataframe(
            firing[["severity", "kind", "subject", "summary", "raised"]].head(10),
            hide_index=True,
        )


def _chain(found: Services, now: dt.datetime) -> None:
    st.subheader("Audit chain")
    state = audit_queries.trail_state(found.reads)
    if not state.chains:
        empty("No audit records yet.")
        return
    cols = st.columns(3)
    cols[0].metric("Records", f"{state.records:,}", help="Across all chains.")
    cols[1].metric(
        "Not yet signed",
        f"{state.unsigned:,}",
        help="Records after the last signed checkpoint of their chain.",
    )
    age = None if state.last_checkpoint_at is None else now - state.last_checkpoint_at
    cols[2].metric(
        "Last checkpoint",
        "none" if age is None else f"{int(age.total_seconds() // 60)} min ago",
        help=utc(state.last_checkpoint_at),
    )
    if state.last_checkpoint_at is None:
        st.warning("No signed checkpoint exists: configure audit.signing_key_file.")


def render() -> None:
    found = get_services()
    principal = current_principal(found)
    if principal is None:
        deny("Sign in to see this page.")
    st.title("Overview")
    now = found.clock()
    if principal.can(Permission.AUDIT_READ) or principal.can(Permission.OPS_READ):
        _traffic(found, now)
    if principal.can(Permission.SPEND_READ):
        _spend(found, principal, now)
    if principal.can(Permission.OPS_READ):
        _alerts(found, now)
    if principal.can(Permission.AUDIT_VERIFY):
        _chain(found, now)


render()
