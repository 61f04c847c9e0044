"""Admin responses render money exactly, as the audit export does."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from governance.access import Role
from proxy.admin.views import jsonable


def test_money_is_a_plain_decimal_string_and_sets_are_sorted() -> None:
    rendered = jsonable(
        {
            "cost": Decimal("1.2E-7"),
            "roles": frozenset({Role.SRE, Role.ADMIN}),
            "at": dt.datetime(2026, 11, 21, 9, 30, tzinfo=dt.UTC),
        }
    )
    assert rendered == {
        "cost": "0.00000012",
        "roles": ["admin", "sre"],
        "at": "2026-11-21T09:30:00Z",
    }
