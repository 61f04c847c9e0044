"""Many-row statements on the hot path, without SQLAlchemy's per-row work.

``connection.execute(statement, rows)`` compiles (cached) and then, for every row, builds
the parameter set through the compiler and the column types' bind processors. For the
audit writer's batches that costs more than the database's own insert. `BulkStatement`
compiles a statement once per dialect for a fixed set of keys, keeps the same bind
processors the compiled statement would apply, and hands the driver plain tuples (or
dicts, for drivers with named parameters) through ``exec_driver_sql``. What reaches the
database is what ``connection.execute`` would have sent: same SQL, same conversions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.sql.dml import UpdateBase


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    positional: bool
    keys: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]

    def parameters(self, row: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        values = tuple(
            row[key] if process is None else process(row[key])
            for key, process in zip(self.keys, self.processors, strict=True)
        )
        return values if self.positional else dict(zip(self.keys, values, strict=True))


class BulkStatement:
    """An INSERT (or upsert) run for many rows that all carry exactly ``keys``."""

    def __init__(self, statement: UpdateBase, keys: Sequence[str]) -> None:
        self._statement = statement
        self._keys = tuple(keys)
        self._compiled: dict[str, _Compiled] = {}

    def execute(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        dialect = connection.dialect
        compiled = self._compiled.get(dialect.name) or self._compile(dialect)
        params = [compiled.parameters(row) for row in rows]
        connection.exec_driver_sql(compiled.sql, params)

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self._statement.compile(dialect=dialect, column_keys=list(self._keys))
        binds = compiled.binds
        if set(binds) != set(self._keys):
            # A bind named unlike its key (or a default the statement would compute)
            # would be sent wrong; refuse rather than guess.
            raise ValueError(
                f"statement binds {sorted(binds)} differ from the row keys {sorted(self._keys)}"
            )
        if dialect.positional:
            order = tuple(compiled.positiontup or ())
            if set(order) != set(self._keys) or len(order) != len(self._keys):
                raise ValueError("a bind parameter repeats in the statement; not supported")
        else:
            order = self._keys
        processors = tuple(
            binds[key].type.dialect_impl(dialect).bind_processor(dialect) for key in order
        )
        built = _Compiled(compiled.string, dialect.positional, order, processors)
        self._compiled[dialect.name] = built
        return built
