"""Adding to rollup rows atomically on SQLite and PostgreSQL.

A rollup row is a key plus counters. Adding a batch's sums to it is one
``INSERT ... ON CONFLICT (key) DO UPDATE SET c = c + excluded.c``: atomic on both
backends, so concurrent writers never lose a count, and it needs no prior read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

from governance.db.bulk import BulkStatement
from governance.db.money import money_add
from governance.db.types import ExactDecimal


class AddingUpserts:
    """Builds (once per dialect and table) the statement that adds a row's values to the
    stored row with the same key, or inserts it. Money columns (`ExactDecimal`) add
    exactly with `money_add`; every other non-key column with ``+``."""

    def __init__(self) -> None:
        self._statements: dict[tuple[str, str], Any] = {}
        self._bulk: dict[tuple[str, str], BulkStatement] = {}

    def execute(
        self,
        connection: Connection,
        model: type[Any],
        keys: Sequence[str],
        rows: Sequence[Mapping[str, Any]],
    ) -> None:
        """Add ``rows`` (each naming every column) to ``model``'s table in one statement."""
        if not rows:
            return
        dialect = connection.dialect.name
        bulk = self._bulk.get((dialect, model.__tablename__))
        if bulk is None:
            bulk = BulkStatement(self.statement(dialect, model, keys), tuple(rows[0]))
            self._bulk[(dialect, model.__tablename__)] = bulk
        bulk.execute(connection, rows)

    def statement(self, dialect: str, model: type[Any], keys: Sequence[str]) -> Any:
        """The upsert for ``model``'s table, keyed on ``keys`` (its primary key)."""
        cached = self._statements.get((dialect, model.__tablename__))
        if cached is not None:
            return cached
        table = cast(Table, model.__table__)
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(table)
        updates = {
            column.name: (
                money_add(column, statement.excluded[column.name])
                if isinstance(column.type, ExactDecimal)
                else column + statement.excluded[column.name]
            )
            for column in table.columns
            if column.name not in keys
        }
        built = statement.on_conflict_do_update(index_elements=list(keys), set_=updates)
        self._statements[(dialect, model.__tablename__)] = built
        return built
