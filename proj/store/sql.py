"""The SQL statements, written once for both backends.

Only the dialect bits vary: column types, the parameter placeholder and the VALUES clause of
the bulk insert. PostgreSQL (>= 9.5) and SQLite (>= 3.24) both understand
INSERT ... ON CONFLICT with `excluded`, so the conflict rules are shared text too.
"""
from __future__ import annotations

from .tables import TABLES, Table


def create_table(table: Table, dialect) -> str:
    columns = ",\n".join(
        f"    {column.name} {dialect.column_types[column.kind]}"
        + ("" if column.nullable else " NOT NULL")
        for column in table.columns
    )
    return (
        f"CREATE TABLE IF NOT EXISTS {table.name} (\n{columns},\n"
        f"    PRIMARY KEY ({', '.join(table.key)})\n)"
    )


def create_indexes(table: Table) -> list[str]:
    """Indexes beyond the primary key: the trade key is an id, yet trades are read by time."""
    if table.name == "trades":
        return ["CREATE INDEX IF NOT EXISTS trades_by_time ON trades (exchange, symbol, timestamp)"]
    return []


def insert(table: Table, dialect) -> str:
    """INSERT that skips (or, for candles, updates-if-newer) rows already stored."""
    return insert_from(table, f"VALUES {dialect.values_clause(len(table.column_names))}")


def insert_from(table: Table, source: str) -> str:
    """As insert(), with the rows from `source`: a VALUES clause or a SELECT (of a staging table)."""
    names = table.column_names
    statement = (
        f"INSERT INTO {table.name} ({', '.join(names)})\n"
        f"{source}\n"
        f"ON CONFLICT ({', '.join(table.key)}) DO "
    )
    if not table.update_if_newer:
        return statement + "NOTHING"
    values = [name for name in names if name not in table.key]
    assignments = ", ".join(f"{name} = excluded.{name}" for name in values)
    # An old redelivery must not overwrite what a later poll of the open candle stored.
    return statement + (
        f"UPDATE SET {assignments}\nWHERE excluded.received > {table.name}.received"
    )


def where(table: Table, filters: dict, placeholder: str) -> tuple[str, list]:
    """A WHERE clause of equality filters on named columns (None matches NULL)."""
    conditions, parameters = [], []
    for name, value in filters.items():
        if name not in table.column_names:
            raise ValueError(f"{table.name} has no column {name!r}")
        if value is None:
            conditions.append(f"{name} IS NULL")
        else:
            conditions.append(f"{name} = {placeholder}")
            parameters.append(value)
    clause = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return clause, parameters


def count(table: Table, filters: dict, placeholder: str) -> tuple[str, list]:
    clause, parameters = where(table, filters, placeholder)
    return f"SELECT COUNT(*) FROM {table.name}{clause}", parameters


def select(table: Table, filters: dict, limit: int | None, placeholder: str) -> tuple[str, list]:
    clause, parameters = where(table, filters, placeholder)
    statement = (
        f"SELECT {', '.join(table.column_names)} FROM {table.name}{clause}"
        f" ORDER BY {', '.join(table.time_order)}"
    )
    if limit is not None:
        statement += f" LIMIT {placeholder}"
        parameters.append(int(limit))
    return statement, parameters


def delete_all() -> list[str]:
    # DELETE rather than TRUNCATE: SQLite has no TRUNCATE, and it takes no exclusive table lock.
    return [f"DELETE FROM {table.name}" for table in TABLES]
