"""Small widgets the pages share: time windows, money, empty states."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

import streamlit as st

from governance.spend.report import SpendLine, plain_decimal

WINDOWS: dict[str, dt.timedelta] = {
    "Last hour": dt.timedelta(hours=1),
    "Last 24 hours": dt.timedelta(days=1),
    "Last 7 days": dt.timedelta(days=7),
    "Last 30 days": dt.timedelta(days=30),
    "Last 90 days": dt.timedelta(days=90),
}


def window_picker(
    label: str, now: dt.datetime, *, default: str = "Last 24 hours", key: str
) -> dt.datetime:
    """A select box of `WINDOWS`; returns the start of the chosen window."""
    names = list(WINDOWS)
    choice = st.selectbox(label, names, index=names.index(default), key=key)
    return now - WINDOWS[choice or default]


def money(lines: Iterable[SpendLine]) -> str:
    """Totals per currency, e.g. ``12.40 EUR + 3.10 USD``; ``0`` without traffic."""
    parts = [
        f"{_amount(line.cost)} {line.currency}".strip()
        for line in lines
        if line.currency or line.cost
    ]
    return " + ".join(parts) or "0"


def _amount(cost: Decimal) -> str:
    """Two decimals, but never a misleading 0.00 for a small non-zero amount."""
    if 0 < cost < Decimal("0.01"):
        return "< 0.01"
    return plain_decimal(cost.quantize(Decimal("0.01")))


def empty(message: str) -> None:
    """The state of a section whose data does not exist yet: say so, do not fail."""
    st.info(message, icon=":material/info:")


def utc(moment: dt.datetime | None) -> str:
    if moment is None:
        return "never"
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
