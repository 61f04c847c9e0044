"""Spend reports: what was used and what it cost, per team, app, model, upstream or destination.

Reports read the daily rollups (``spend_daily``), never the audit records: the rollups
equal the sums over the completed records and stay small however much traffic there is.
They cover whole UTC days, ``since`` to ``until`` inclusive.

Money is added in Python with `Decimal` under a context that raises on any rounding, so
a total is exact (SQL sums on SQLite would go through floats). Different currencies are
never added: a group with traffic in two currencies gets a line per currency. Requests
without a currency (unpriced, or without tokens) cost nothing and are counted on the line
of the group's one currency when it has exactly one, else on a line of their own.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from decimal import Decimal, Inexact, localcontext
from typing import Any, Literal, cast, get_args

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from governance.access import Permission, Principal
from governance.db.spend_models import SpendDaily
from governance.errors import InvalidRequestError
from governance.spend.ledger import SpendSums

Dimension = Literal["team", "app", "model", "upstream", "destination"]
DIMENSIONS: tuple[Dimension, ...] = get_args(Dimension)
NONE_LABEL = "(none)"  # how an absent dimension ('' in the rollups) is shown

# Which rollup columns make up a group: an upstream model is (upstream, deployment model).
_GROUP_COLUMNS: Mapping[Dimension, tuple[InstrumentedAttribute[str], ...]] = {
    "team": (SpendDaily.team,),
    "app": (SpendDaily.app,),
    "model": (SpendDaily.model,),
    "upstream": (SpendDaily.upstream, SpendDaily.deployment_model),
    "destination": (SpendDaily.destination,),
}
_COUNTS = (
    "requests",
    "succeeded",
    "estimated",
    "unpriced",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
)
# The figures of a line, in column order after its group columns (CSV and tables).
FIGURES = (
    "requests",
    "succeeded",
    "estimated",
    "unpriced",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "cost",
    "currency",
)
_EXACT_DIGITS = 60  # far beyond NUMERIC(30, 12); with Inexact trapped, sums never round


def group_columns(by: Dimension) -> tuple[str, ...]:
    """The names of the columns identifying a line when reporting ``by`` a dimension."""
    return tuple(column.key for column in _GROUP_COLUMNS[by])


@dataclass(frozen=True, slots=True)
class SpendLine:
    """The totals of one group (and currency) over the report's days.

    ``group`` holds the values of `group_columns` (absent ones as ``(none)``);
    ``estimated`` counts requests whose usage was estimated rather than reported,
    ``unpriced`` those with tokens but no price; ``currency`` is ``''`` only for a group
    none of whose requests was priced.
    """

    group: tuple[str, ...]
    currency: str
    requests: int
    succeeded: int
    estimated: int
    unpriced: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost: Decimal

    @property
    def name(self) -> str:
        return " / ".join(self.group)


@dataclass(frozen=True, slots=True)
class DailySpend:
    """One group's totals on one UTC day."""

    day: dt.date
    line: SpendLine


def _line(sums: SpendSums, group: tuple[str, ...], currency: str) -> SpendLine:
    return SpendLine(group, currency, **{f.name: getattr(sums, f.name) for f in fields(sums)})


GroupKey = tuple[tuple[str, ...], str]  # (group values, currency)


def spend_report(
    sessions: sessionmaker[Session],
    by: Dimension,
    since: dt.date,
    until: dt.date | None = None,
    *,
    actor: Principal,
) -> list[SpendLine]:
    """Totals per group over the UTC days ``since`` .. ``until`` (inclusive; open-ended
    when None), most expensive first, then by name. Needs ``spend:read``."""
    sums: dict[GroupKey, SpendSums] = {}
    with _exact():
        for _, group, currency, row in _rows(sessions, by, since, until, actor):
            sums.setdefault((group, currency), SpendSums()).merge(row)
        return _lines(sums)


def daily_spend(
    sessions: sessionmaker[Session],
    by: Dimension,
    since: dt.date,
    until: dt.date | None = None,
    *,
    actor: Principal,
) -> list[DailySpend]:
    """`spend_report`'s lines for each UTC day that had traffic (days in order), for
    charting spend over time. Needs ``spend:read``."""
    days: dict[dt.date, dict[GroupKey, SpendSums]] = {}
    with _exact():
        for day, group, currency, row in _rows(sessions, by, since, until, actor):
            days.setdefault(day, {}).setdefault((group, currency), SpendSums()).merge(row)
        return [
            DailySpend(day, line) for day, sums in sorted(days.items()) for line in _lines(sums)
        ]


def totals(lines: Iterable[SpendLine]) -> list[SpendLine]:
    """The grand total of report lines, one per currency (group ``("TOTAL",)``)."""
    sums: dict[GroupKey, SpendSums] = {}
    with _exact():
        for line in lines:
            sums.setdefault((("TOTAL",), line.currency), SpendSums()).merge(line)
        return _lines(sums)


def _rows(
    sessions: sessionmaker[Session],
    by: Dimension,
    since: dt.date,
    until: dt.date | None,
    actor: Principal,
) -> Iterable[tuple[dt.date, tuple[str, ...], str, Any]]:
    """(day, group values, currency, rollup row) of every rollup row in the window."""
    actor.require(Permission.SPEND_READ)
    if by not in _GROUP_COLUMNS:
        raise InvalidRequestError(
            f"cannot report by {by!r}; choose one of {', '.join(DIMENSIONS)}", param="by"
        )
    if until is not None and until < since:
        raise InvalidRequestError(f"until ({until}) is before since ({since})", param="until")
    group = _GROUP_COLUMNS[by]
    query = select(
        SpendDaily.day,
        SpendDaily.currency,
        *group,
        *(getattr(SpendDaily, name) for name in _COUNTS),
        SpendDaily.cost,
    ).where(SpendDaily.day >= since)
    if until is not None:
        query = query.where(SpendDaily.day <= until)
    width = len(group)
    with sessions() as session:
        for row in session.execute(query.execution_options(yield_per=5000)):
            values = tuple(cast(str, value) or NONE_LABEL for value in row[2 : 2 + width])
            yield row.day, values, row.currency, row


def _lines(sums: dict[GroupKey, SpendSums]) -> list[SpendLine]:
    """Lines sorted by cost (descending) then name, after folding currency-less sums."""
    folded = _fold_uncurrencied(sums)
    lines = [_line(total, group, currency) for (group, currency), total in folded.items()]
    return sorted(lines, key=lambda line: (-line.cost, line.group, line.currency))


def _fold_uncurrencied(sums: dict[GroupKey, SpendSums]) -> dict[GroupKey, SpendSums]:
    """Add each group's currency-less sum (which costs nothing) to the group's line in
    its one currency, when it has exactly one; otherwise leave it a line of its own."""
    currencies: dict[tuple[str, ...], list[str]] = {}
    for group, currency in sums:
        if currency:
            currencies.setdefault(group, []).append(currency)
    folded: dict[GroupKey, SpendSums] = {}
    for (group, currency), total in sums.items():
        if currency or len(currencies.get(group, [])) != 1:
            folded.setdefault((group, currency), SpendSums()).merge(total)
    for (group, currency), total in sums.items():
        others = currencies.get(group, [])
        if not currency and len(others) == 1:
            folded[(group, others[0])].merge(total)
    return folded


@contextmanager
def _exact() -> Iterator[None]:
    """A decimal context in which a sum that would round raises instead."""
    with localcontext() as context:
        context.prec = _EXACT_DIGITS
        context.traps[Inexact] = True
        yield


def plain_decimal(value: Decimal) -> str:
    """``value`` in positional notation without trailing zeros (``1.5``, ``0``, ``120``):
    exact, never an exponent, as spreadsheets read it."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def aligned_decimals(values: Sequence[Decimal]) -> list[str]:
    """``values`` in positional notation, all with the decimals of the most precise one, so
    that they line up when right-aligned (padding with zeros only: still exact)."""
    places = max((len(plain_decimal(v).partition(".")[2]) for v in values), default=0)
    return [format(v, f".{places}f") for v in values]


def line_figures(line: SpendLine) -> list[str]:
    """A line's `FIGURES` as text (cost as a plain exact decimal)."""
    counts = [str(getattr(line, name)) for name in FIGURES[:-2]]
    return [*counts, plain_decimal(line.cost), line.currency]


def report_csv(columns: Sequence[str], lines: Iterable[SpendLine]) -> str:
    """A report as RFC 4180 CSV (CRLF line ends), header first, no totals: what the
    command line's ``--format csv`` and the dashboard's chargeback export write."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*columns, *FIGURES])
    for line in lines:
        writer.writerow([*line.group, *line_figures(line)])
    return out.getvalue()
