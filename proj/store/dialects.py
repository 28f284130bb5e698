"""What differs between PostgreSQL and SQLite: connecting, types, placeholders, bulk insert."""
from __future__ import annotations

import io
import os
import re
import sqlite3

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from . import sql
from .tables import DECIMAL, INTEGER, LEVELS, TEXT

# How many rows go into one INSERT statement on PostgreSQL.
PAGE_SIZE = 500

# From this many rows on, PostgreSQL gets them by COPY into a temporary staging table and one
# INSERT ... SELECT ... ON CONFLICT: a round trip more than INSERT ... VALUES, but no per-row
# quoting in Python and less parsing in the server (measured here: 100 trades 3.3 ms against
# 4.2 ms, 500 trades 9.5 ms against 16 ms, commit included; 10 trades 1.25 ms against 0.9 ms).
# The staging tables live as long as the connection's session: behind a transaction-pooling
# proxy (pgbouncer in transaction mode) a write could meet a session without them; it fails,
# is rolled back and retried, and the retry creates them again.
COPY_MIN_ROWS = 50

# Seconds an SQLite writer waits for another process's write lock before giving up.
SQLITE_BUSY_TIMEOUT = 30.0

# Key of the PostgreSQL advisory lock that serializes table creation across processes:
# two concurrent CREATE TABLE IF NOT EXISTS can otherwise both try to create the row type
# and one fails with a unique violation.
DDL_LOCK_KEY = 0x70726F6A  # "proj"

SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]*")

# Read NUMERIC and JSONB as the server's text: exact decimals without going through Decimal
# (str(Decimal("0.00000001")) is "1E-8"), and JSON decoded by the same code as SQLite's TEXT.
NUMERIC_AS_TEXT = psycopg2.extensions.new_type((1700,), "NUMERIC_AS_TEXT", lambda value, cursor: value)
JSONB_AS_TEXT = psycopg2.extensions.new_type((3802,), "JSONB_AS_TEXT", lambda value, cursor: value)


class PostgresDialect:
    name = "postgresql"
    placeholder = "%s"
    column_types = {TEXT: "TEXT", INTEGER: "BIGINT", DECIMAL: "NUMERIC", LEVELS: "JSONB"}
    errors = psycopg2.Error
    # Raised when the server or network dropped the connection (and for a closed one).
    connection_errors = (psycopg2.OperationalError, psycopg2.InterfaceError)
    begin_write = None            # psycopg2 opens a transaction on the first statement
    keeps_data_in_connection = False

    def __init__(self, dsn: str, schema: str | None = None):
        if schema is not None and not SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema must be a lowercase SQL identifier, got {schema!r}")
        self.dsn = dsn
        self.schema = schema

    def connect(self):
        options = {"options": f"-c search_path={self.schema}"} if self.schema else {}
        connection = psycopg2.connect(self.dsn, connection_factory=StagingConnection, **options)
        psycopg2.extensions.register_type(NUMERIC_AS_TEXT, connection)
        psycopg2.extensions.register_type(JSONB_AS_TEXT, connection)
        return connection

    @staticmethod
    def is_closed(connection) -> bool:
        # psycopg2 sets `closed` once libpq sees the connection is gone (2) or after close() (1).
        return connection.closed != 0

    def values_clause(self, width: int) -> str:
        return "%s"  # execute_values fills in many "(...)" tuples per statement

    def setup_statements(self) -> list[str]:
        statements = [f"SELECT pg_advisory_xact_lock({DDL_LOCK_KEY})"]
        if self.schema:
            statements.append(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
        return statements

    @staticmethod
    def insert_many(cursor, statement: str, rows: list[tuple], table) -> list[tuple]:
        """Insert the rows; returns the keys of the rows inserted or updated (RETURNING:
        rowcount would only describe the last page). Few rows: pages of INSERT ... VALUES;
        many: COPY into the table's staging table, then INSERT ... SELECT."""
        returning = f"\nRETURNING {', '.join(table.key)}"
        if len(rows) < COPY_MIN_ROWS:
            return [tuple(changed) for changed in psycopg2.extras.execute_values(
                cursor, statement + returning, rows, page_size=PAGE_SIZE, fetch=True)]
        stage = f"{table.name}_stage"
        names = ", ".join(table.column_names)
        staged = cursor.connection.staged
        if stage not in staged:
            # Per connection, emptied at every commit; gone with a rollback (see StagingConnection).
            cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} "
                           f"(LIKE {table.name}) ON COMMIT DELETE ROWS")
            staged.add(stage)
        cursor.copy_expert(f"COPY {stage} ({names}) FROM STDIN", io.StringIO(copy_text(rows)))
        cursor.execute(sql.insert_from(table, f"SELECT {names} FROM {stage}") + returning)
        return [tuple(changed) for changed in cursor.fetchall()]


class StagingConnection(psycopg2.extensions.connection):
    """A connection that remembers which staging tables it created. A rollback forgets them
    all: one created in the rolled-back transaction no longer exists."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.staged: set[str] = set()

    def rollback(self):
        self.staged.clear()
        super().rollback()


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(rows: list[tuple]) -> str:
    """Rows in COPY's text format: tab-separated, \\N for NULL, backslash escapes where needed."""
    lines = []
    for row in rows:
        texts = [value for value in row if type(value) is str]
        probe = "".join(texts)
        plain = not ("\\" in probe or "\t" in probe or "\n" in probe or "\r" in probe)
        lines.append("\t".join(
            "\\N" if value is None
            else (value if plain else value.translate(_COPY_ESCAPES)) if type(value) is str
            else str(value)
            for value in row))
    lines.append("")
    return "\n".join(lines)


class SqliteDialect:
    name = "sqlite"
    placeholder = "?"
    # TEXT keeps decimals as the exact strings (NUMERIC affinity would turn them into floats).
    column_types = {TEXT: "TEXT", INTEGER: "INTEGER", DECIMAL: "TEXT", LEVELS: "TEXT"}
    errors = sqlite3.Error
    connection_errors = ()        # a local file does not drop the connection
    # Take the write lock up front: a deferred transaction that later upgrades to writing can
    # fail with SQLITE_BUSY at once instead of waiting out the busy timeout.
    begin_write = "BEGIN IMMEDIATE"

    def __init__(self, path: str | None):
        self.path = path          # None: an in-memory database
        self.keeps_data_in_connection = path is None

    def connect(self):
        if self.path is not None:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        # isolation_level=None: the store issues BEGIN itself; `timeout` is the busy timeout.
        connection = sqlite3.connect(
            self.path or ":memory:", timeout=SQLITE_BUSY_TIMEOUT, isolation_level=None
        )
        # WAL lets readers and several writing worker processes share the file.
        connection.execute("PRAGMA journal_mode=WAL")
        return connection

    @staticmethod
    def is_closed(connection) -> bool:
        return False

    def values_clause(self, width: int) -> str:
        return "(" + ", ".join("?" * width) + ")"

    @staticmethod
    def setup_statements() -> list[str]:
        return []

    @staticmethod
    def insert_many(cursor, statement: str, rows: list[tuple], table) -> list[tuple]:
        """Row by row (a local file: cheap), to learn which rows ON CONFLICT skipped;
        returns the keys of the rows inserted or updated."""
        key_at = [table.column_names.index(name) for name in table.key]
        changed = []
        for row in rows:
            cursor.execute(statement, row)
            if cursor.rowcount == 1:
                changed.append(tuple(row[i] for i in key_at))
        return changed


def dialect_for(url: str, schema: str | None = None):
    """The dialect for a database URL (see open_store for the accepted forms)."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDialect(url, schema)
    if url.startswith("sqlite:"):
        if schema is not None:
            raise ValueError("schema= applies to PostgreSQL only")
        path = url[len("sqlite:"):].removeprefix("//")
        if path in ("", "/:memory:", ":memory:"):
            return SqliteDialect(None)
        if not path.startswith("/"):
            raise ValueError(f"SQLite URL needs an absolute path, e.g. sqlite:///data/file.db: {url!r}")
        return SqliteDialect(path)
    raise ValueError(f"unsupported database URL {url!r}; expected postgresql:// or sqlite://")
