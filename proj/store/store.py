"""The store: idempotent writes of normalized records to PostgreSQL or SQLite."""
from __future__ import annotations

import os
from contextlib import suppress

from . import sql
from .dialects import dialect_for
from .tables import TABLES, rows_by_table, table_for


def open_store(url: str, schema: str | None = None) -> "Store":
    """Open the store at `url` and create its tables if missing.

    url:
      "postgresql://user@host:port/db" (also "postgres://"; libpq query parameters such as
      ?application_name=... pass through), or
      "sqlite:///abs/path/file.db" (three slashes, then the absolute path; the folder is
      created if missing), or "sqlite://" / "sqlite:///:memory:" for an in-memory database.
    schema:
      PostgreSQL only: a lowercase schema name holding all four tables; it is created if
      missing and put on the connection's search_path. Tests use it to keep to themselves.

    Table creation is idempotent and safe when several processes open the store at once.
    It runs on a short-lived connection, so a process that opens the store and then forks
    (a Celery prefork master) holds no connection its children could inherit.
    """
    store = Store(dialect_for(url, schema))
    store.create_tables()
    if not store.dialect.keeps_data_in_connection:
        store.close()
    return store


class Store:
    """Four tables (order_books, trades, tickers, candles) behind write/count/fetch.

    Usable from Celery worker processes: the connection opens on first use, a connection
    inherited across fork() is never used, and a dropped PostgreSQL connection is reopened
    and the call retried once (safe: every write is idempotent). One store per thread.
    """

    def __init__(self, dialect):
        self.dialect = dialect
        self._connection = None
        self._connection_pid = None
        # Connections inherited from a parent process, kept referenced rather than closed:
        # closing would end the parent's session over the socket (or file handle) both share.
        self._inherited = []

    def write(self, records) -> int:
        """Write records of any mix of types in one transaction; all or nothing.

        Returns how many rows were inserted or changed: a trade, book or ticker already stored
        counts 0, a candle counts 1 only if this record's `received` is newer than the stored
        one. Raises InvalidRecord (before touching the database) for a malformed record, or the
        driver's error after rolling back.
        """
        return len(self.write_new(records))

    def write_new(self, records) -> list[dict]:
        """As write(), but returns the records that were new (inserted or changed), once each,
        in their input order: what live consumers should be told about."""
        records = list(records)
        grouped = rows_by_table(records)
        if not grouped:
            return []

        def insert_all(cursor):
            changed = set()
            for table, rows in grouped.items():
                for changed_key in self.dialect.insert_many(cursor, sql.insert(table, self.dialect),
                                                            rows, table):
                    changed.add((table.name, changed_key))
            return changed

        changed = self._transaction(insert_all, writes=True)
        new = []
        for record in records:
            table = table_for(record["type"])
            marker = (table.name, tuple(record[name] for name in table.key))
            if marker in changed:
                changed.discard(marker)   # a key repeated in the batch is new only once
                new.append(record)
        return new

    def count(self, kind: str, **filters) -> int:
        """Rows of a record type ("order_book", "trade", "ticker", "candle"), filtered by
        column equality, e.g. count("candle", exchange="binance", timeframe="1m")."""
        statement, parameters = sql.count(table_for(kind), filters, self.dialect.placeholder)
        return self._transaction(lambda cursor: _one(cursor, statement, parameters)[0])

    def fetch(self, kind: str, exchange: str | None = None, symbol: str | None = None,
              limit: int | None = 100) -> list[dict]:
        """Up to `limit` records (None: all), oldest first (the first `limit` rows of the
        time order: received for books and tickers, timestamp for trades and candles)."""
        table = table_for(kind)
        filters = {name: value for name, value in (("exchange", exchange), ("symbol", symbol))
                   if value is not None}
        statement, parameters = sql.select(table, filters, limit, self.dialect.placeholder)

        def read(cursor):
            cursor.execute(statement, parameters)
            return [table.record(row) for row in cursor.fetchall()]

        return self._transaction(read)

    def create_tables(self) -> None:
        """Create the tables and indexes if missing (open_store does this)."""
        statements = self.dialect.setup_statements()
        for table in TABLES:
            statements.append(sql.create_table(table, self.dialect))
            statements.extend(sql.create_indexes(table))
        self._transaction(lambda cursor: _execute_all(cursor, statements), writes=True)

    def truncate(self) -> None:
        """Empty all four tables (tests and ops)."""
        statements = sql.delete_all()
        self._transaction(lambda cursor: _execute_all(cursor, statements), writes=True)

    def close(self) -> None:
        """Close the connection; a later call opens a new one."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._connection_pid != os.getpid():
            self._inherited.append(connection)  # the parent's, not ours to close
            return
        with suppress(self.dialect.errors):
            connection.close()

    def _transaction(self, work, writes: bool = False):
        """Run work(cursor) in one transaction and commit; on a dropped connection, reconnect
        and run it once more (a commit lost with the connection never happened, and a commit
        that did happen is harmless to repeat: every write is idempotent)."""
        try:
            return self._attempt(work, writes)
        except self.dialect.connection_errors:
            connection = self._connection
            if connection is None or not self.dialect.is_closed(connection):
                raise  # the server refused us, not a dropped connection
            self._connection = None
            return self._attempt(work, writes)

    def _attempt(self, work, writes: bool):
        connection = self._open_connection()
        cursor = connection.cursor()
        try:
            if writes and self.dialect.begin_write:
                cursor.execute(self.dialect.begin_write)
            result = work(cursor)
            connection.commit()  # also ends PostgreSQL's implicit transaction after a read
            return result
        except BaseException:
            with suppress(self.dialect.errors):  # the connection may be gone already
                connection.rollback()
            raise
        finally:
            with suppress(self.dialect.errors):
                cursor.close()

    def _open_connection(self):
        """The connection of this process, opened if there is none or it was closed."""
        pid = os.getpid()
        if self._connection is not None and self._connection_pid != pid:
            self._inherited.append(self._connection)
            self._connection = None
        if self._connection is None or self.dialect.is_closed(self._connection):
            self._connection = self.dialect.connect()
            self._connection_pid = pid
        return self._connection


def _one(cursor, statement, parameters):
    cursor.execute(statement, parameters)
    return cursor.fetchone()


def _execute_all(cursor, statements):
    for statement in statements:
        cursor.execute(statement)
