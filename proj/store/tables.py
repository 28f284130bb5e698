"""The four tables: their columns, keys and conflict rules, and record <-> row conversion.

Everything here is backend-neutral; column kinds are mapped to SQL types by the dialects.
Records are checked just enough that both backends accept and reject the same inputs
(SQLite's TEXT would happily store a price of "abc" that PostgreSQL's NUMERIC refuses).
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

# Column kinds; dialects map them to SQL types.
TEXT = "text"
INTEGER = "integer"    # milliseconds, nonces, trade counts
DECIMAL = "decimal"    # prices and amounts, kept as exact decimal strings
LEVELS = "levels"      # order book sides: [[price, amount], ...] as JSON

# Plain non-negative decimal, no exponent: the only shape that round-trips exactly through
# both NUMERIC and TEXT (PostgreSQL would turn "1e-8" into "0.00000001").
PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


_MISSING = object()


class InvalidRecord(ValueError):
    """A record the store cannot take; retrying the same write will not help."""


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    nullable: bool = False


@dataclass(frozen=True, eq=False)   # one object per table: hashed by identity, cheaply
class Table:
    record_type: str             # the records' "type" field
    name: str
    columns: tuple[Column, ...]  # in the order of the record schema
    key: tuple[str, ...]         # unique key: what makes a redelivered record the same row
    time_order: tuple[str, ...]  # fetch order: time first, then the rest of the key
    # Candles change while open, so a newer reception replaces the stored values;
    # every other table keeps the first row it got.
    update_if_newer: bool = False

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def __post_init__(self):
        plain = not any(column.kind == LEVELS for column in self.columns)
        object.__setattr__(self, "_plain_row", plain)   # every value goes in as it is
        kinds = {TEXT: TEXT, INTEGER: INTEGER, DECIMAL: DECIMAL, LEVELS: LEVELS}   # for `is`
        object.__setattr__(self, "_kinds", tuple((column.name, kinds[column.kind], column.nullable)
                                                 for column in self.columns))

    def row(self, record: Mapping) -> tuple:
        """The record as a row of column values, checked; raises InvalidRecord."""
        if self._plain_row and type(record) is dict:
            # The hot path (a batch of trades): only type checks, inline. Anything unusual
            # goes the long way, which also says what is wrong.
            values = []
            for name, kind, nullable in self._kinds:
                value = record.get(name, _MISSING)
                if value is _MISSING:
                    break
                if value is None:
                    if not nullable:
                        break
                elif kind is TEXT:
                    if type(value) is not str:
                        break
                elif kind is DECIMAL:
                    if type(value) is not str or PLAIN_DECIMAL.fullmatch(value) is None:
                        break
                elif type(value) is not int:   # INTEGER
                    break
                values.append(value)
            else:
                return tuple(values)
        return tuple(_encode(self.record_type, column, record) for column in self.columns)

    def record(self, row: tuple) -> dict:
        """A fetched row back as a record dict, shaped as it was written."""
        record = {"type": self.record_type}
        for column, value in zip(self.columns, row):
            # Both dialects hand decimals and levels back as text, so one decoder serves.
            record[column.name] = json.loads(value) if column.kind == LEVELS else value
        return record

    def unique_rows(self, rows: list[tuple]) -> list[tuple]:
        """One row per key, the one the database would end up keeping had the rows come one by one.

        PostgreSQL refuses an INSERT ... ON CONFLICT DO UPDATE that touches the same row twice,
        and deduplicating here keeps the returned counts the same on both backends.
        """
        key_at = [self.column_names.index(name) for name in self.key]
        received_at = self.column_names.index("received")
        kept: dict[tuple, tuple] = {}
        for row in rows:
            key = tuple(row[i] for i in key_at)
            held = kept.get(key)
            if held is None or (self.update_if_newer and row[received_at] > held[received_at]):
                kept[key] = row
        return list(kept.values())


def _columns(*specs: str) -> tuple[Column, ...]:
    """Columns from "name kind" or "name kind null" strings."""
    columns = []
    for spec in specs:
        name, kind, *null = spec.split()
        columns.append(Column(name, kind, nullable=null == ["null"]))
    return tuple(columns)


ORDER_BOOKS = Table(
    record_type="order_book",
    name="order_books",
    columns=_columns(
        "exchange text", "symbol text", "timestamp integer null", "received integer",
        "nonce integer null", "bids levels", "asks levels",
    ),
    key=("exchange", "symbol", "received"),
    time_order=("received", "exchange", "symbol"),
)

TRADES = Table(
    record_type="trade",
    name="trades",
    columns=_columns(
        "exchange text", "symbol text", "id text", "timestamp integer", "received integer",
        "side text null", "price decimal", "amount decimal",
    ),
    key=("exchange", "symbol", "id"),
    time_order=("timestamp", "exchange", "symbol", "id"),
)

TICKERS = Table(
    record_type="ticker",
    name="tickers",
    columns=_columns(
        "exchange text", "symbol text", "timestamp integer null", "received integer",
        "bid decimal null", "ask decimal null", "last decimal null", "open decimal null",
        "high decimal null", "low decimal null", "volume decimal null",
        "quote_volume decimal null", "vwap decimal null",
    ),
    key=("exchange", "symbol", "received"),
    time_order=("received", "exchange", "symbol"),
)

CANDLES = Table(
    record_type="candle",
    name="candles",
    columns=_columns(
        "exchange text", "symbol text", "timeframe text", "timestamp integer", "received integer",
        "open decimal", "high decimal", "low decimal", "close decimal", "volume decimal",
        "trades integer null",
    ),
    key=("exchange", "symbol", "timeframe", "timestamp"),
    time_order=("timestamp", "exchange", "symbol", "timeframe"),
    update_if_newer=True,
)

# Also the order in which one write() inserts its rows.
TABLES = (ORDER_BOOKS, TRADES, TICKERS, CANDLES)
TABLE_FOR_TYPE = {table.record_type: table for table in TABLES}


def table_for(record_type: str) -> Table:
    try:
        return TABLE_FOR_TYPE[record_type]
    except KeyError:
        raise ValueError(
            f"unknown record type {record_type!r}; expected one of {sorted(TABLE_FOR_TYPE)}"
        ) from None


def rows_by_table(records) -> dict[Table, list[tuple]]:
    """Group and check records before any SQL runs; raises InvalidRecord on the first bad one."""
    grouped: dict[Table, list[tuple]] = {}
    for record in records:
        if not isinstance(record, Mapping):
            raise InvalidRecord(f"a record must be a dict, got {type(record).__name__}")
        table = TABLE_FOR_TYPE.get(record.get("type"))
        if table is None:
            raise InvalidRecord(f"unknown record type {record.get('type')!r}")
        grouped.setdefault(table, []).append(table.row(record))
    return {table: table.unique_rows(grouped[table]) for table in TABLES if table in grouped}


def _encode(record_type: str, column: Column, record: Mapping):
    try:
        value = record[column.name]
    except KeyError:
        raise InvalidRecord(f"{record_type} record lacks {column.name!r}") from None
    if value is None:
        if column.nullable:
            return None
        raise InvalidRecord(f"{record_type} record: {column.name!r} must not be null")
    if column.kind == TEXT:
        valid = isinstance(value, str)
    elif column.kind == INTEGER:
        valid = isinstance(value, int) and not isinstance(value, bool)
    elif column.kind == DECIMAL:
        valid = isinstance(value, str) and PLAIN_DECIMAL.fullmatch(value) is not None
    else:  # LEVELS
        valid = isinstance(value, list)
        if valid:
            # Compact JSON; the decimal strings inside are kept exactly as given.
            try:
                value = orjson.dumps(value).decode()
            except TypeError:
                valid = False
    if not valid:
        raise InvalidRecord(f"{record_type} record: bad {column.name!r}: {value!r}")
    # plain str and int, not a subclass's (an Enum member's str() is its name): the bulk path
    # writes str(value)
    if column.kind in (TEXT, DECIMAL) and type(value) is not str:
        return str.__str__(value)
    if column.kind == INTEGER and type(value) is not int:
        return int(value)
    return value
