"""Adding money inside the database, exactly, on both backends.

PostgreSQL adds ``NUMERIC`` values exactly. SQLite has no decimal type: Tollhouse stores
money there as text, and ``+`` on text would go through a float. So on SQLite,
`money_add` compiles to a SQL function Tollhouse registers on every connection, which
adds with Python's `Decimal`; the statement stays a single atomic ``UPDATE``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from governance.db.types import ExactDecimal

_SQLITE_FUNCTION = "tollhouse_money_add"


class money_add(FunctionElement[Decimal]):
    """``a + b`` for two money expressions."""

    type = ExactDecimal()
    inherit_cache = True


@compiles(money_add)
def _add_numeric(element: money_add, compiler: SQLCompiler, **kw: Any) -> str:
    left, right = list(element.clauses)
    return f"({compiler.process(left, **kw)} + {compiler.process(right, **kw)})"


@compiles(money_add, "sqlite")
def _add_text(element: money_add, compiler: SQLCompiler, **kw: Any) -> str:
    left, right = list(element.clauses)
    return f"{_SQLITE_FUNCTION}({compiler.process(left, **kw)}, {compiler.process(right, **kw)})"


def _add(left: str | None, right: str | None) -> str | None:
    if left is None or right is None:
        return left if right is None else right
    return format(Decimal(left) + Decimal(right), "f")


def register_sqlite_functions(dbapi_connection: Any) -> None:
    dbapi_connection.create_function(_SQLITE_FUNCTION, 2, _add, deterministic=True)
