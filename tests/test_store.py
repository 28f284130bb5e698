"""The store against both backends: SQLite in a temporary file and the local PostgreSQL.

PostgreSQL tests run in a schema of their own (created per session, dropped at the end), so
other test files using the same database are not disturbed. Set STORE_TEST_POSTGRES_URL to
point them elsewhere; they are skipped if the server cannot be reached.
"""
from __future__ import annotations

import multiprocessing
import os
import sqlite3
import time
import uuid

import psycopg2
import pytest

from proj.store import InvalidRecord, open_store

POSTGRES_URL = os.environ.get("STORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
KINDS = ("order_book", "trade", "ticker", "candle")
T0 = 1_700_000_000_000  # a plausible time in ms


def with_application_name(url: str, name: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


@pytest.fixture(scope="session")
def pg_schema():
    """A schema private to this test session, dropped afterwards."""
    try:
        admin = psycopg2.connect(POSTGRES_URL, connect_timeout=3)
    except psycopg2.OperationalError as error:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {error}")
    admin.autocommit = True
    schema = f"store_test_{uuid.uuid4().hex[:12]}"
    yield schema
    with admin.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        # A folder that does not exist yet: open_store must create it.
        store = open_store(f"sqlite:///{tmp_path}/data/store.db")
    else:
        store = open_store(POSTGRES_URL, schema=request.getfixturevalue("pg_schema"))
        store.truncate()  # the schema is shared by the session's tests
    yield store
    store.close()


def trade(trade_id="1", **changes):
    record = {"type": "trade", "exchange": "bitstamp", "symbol": "BTC/USD", "id": trade_id,
              "timestamp": T0, "received": T0 + 50, "side": "buy",
              "price": "73254.5", "amount": "0.0001"}
    return {**record, **changes}


def candle(**changes):
    record = {"type": "candle", "exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1m",
              "timestamp": T0, "received": T0 + 1_000, "open": "100", "high": "110",
              "low": "90", "close": "105", "volume": "12.5", "trades": 42}
    return {**record, **changes}


def book(**changes):
    record = {"type": "order_book", "exchange": "kraken", "symbol": "ETH/USD",
              "timestamp": T0, "received": T0 + 20, "nonce": 123456789,
              "bids": [["3000.1", "0.5"], ["2999", "0.00000001"]],
              "asks": [["3000.2", "123456789012345.123456789"]]}
    return {**record, **changes}


def ticker(**changes):
    record = {"type": "ticker", "exchange": "okx", "symbol": "BTC/USDT", "timestamp": None,
              "received": T0 + 30, "bid": "73254.4", "ask": "73254.5", "last": "73254.5",
              "open": "72000", "high": "74000", "low": "71000.01", "volume": "0",
              "quote_volume": None, "vwap": "0.00000001"}
    return {**record, **changes}


def counts(store):
    return {kind: store.count(kind) for kind in KINDS}


NOTHING = dict.fromkeys(KINDS, 0)


def test_decimals_and_levels_round_trip_exactly(store):
    records = [
        trade("1", price="0.00000001", amount="0"),
        trade("2", price="123456789012345.123456789", amount="0.0001", side=None),
        book(),
        ticker(),
        candle(open="0.00000001", high="123456789012345.123456789", low="0", close="1",
               volume="0", trades=None),
    ]
    assert store.write(records) == 5
    assert store.fetch("trade") == records[:2]
    assert store.fetch("order_book") == [records[2]]
    assert store.fetch("ticker") == [records[3]]
    assert store.fetch("candle") == [records[4]]


def test_trades_written_twice_are_stored_once(store):
    batch = [trade("1"), trade("2"), trade("3")]
    assert store.write(batch) == 3
    assert store.write(batch) == 0  # a redelivered task
    assert store.count("trade") == 3
    # Duplicates inside one batch count once; the same id on another symbol is another trade.
    assert store.write([trade("4"), trade("4"), trade("1", symbol="ETH/USD")]) == 2
    assert store.count("trade") == 5


def test_counts_add_up_over_many_insert_pages(store):
    # More rows than one PostgreSQL INSERT page (500), so the count must sum every page.
    first = [trade(str(n)) for n in range(1_200)]
    assert store.write(first) == 1_200
    overlapping = [trade(str(n)) for n in range(600, 1_800)]
    assert store.write(overlapping) == 600
    assert store.count("trade") == 1_800


def test_candle_newer_reception_wins_older_is_ignored(store):
    assert store.write([candle(received=T0 + 1_000, close="101")]) == 1
    assert store.write([candle(received=T0 + 2_000, close="102", high="120")]) == 1
    assert store.write([candle(received=T0 + 1_500, close="999")]) == 0  # old redelivery
    assert store.write([candle(received=T0 + 2_000, close="888")]) == 0  # not newer
    [stored] = store.fetch("candle")
    assert (stored["received"], stored["close"], stored["high"]) == (T0 + 2_000, "102", "120")

    # Several versions of one candle in one batch: the newest is kept, whatever the order.
    versions = [candle(received=T0 + 4_000, close="104"), candle(received=T0 + 3_000, close="103")]
    assert store.write(versions) == 1
    [stored] = store.fetch("candle")
    assert stored["close"] == "104"
    assert store.count("candle") == 1


def test_books_and_tickers_are_idempotent_per_reception(store):
    assert store.write([book(), ticker()]) == 2
    assert store.write([book(), ticker()]) == 0
    assert store.write([book(received=T0 + 5_000), ticker(received=T0 + 5_000)]) == 2
    assert counts(store) == {"order_book": 2, "trade": 0, "ticker": 2, "candle": 0}


def without(record, key):
    return {name: value for name, value in record.items() if name != key}


@pytest.mark.parametrize("bad, error", [
    pytest.param(trade("9", price="abc"), InvalidRecord, id="price-abc"),
    pytest.param(without(trade("9"), "amount"), InvalidRecord, id="missing-key"),
    pytest.param(without(trade("9"), "side"), InvalidRecord, id="missing-nullable-key"),
    pytest.param(trade("9", timestamp=True), InvalidRecord, id="bool-time"),
    pytest.param(trade("9", price=0.1), InvalidRecord, id="float-price"),
    # Passes the checks but the database refuses it (out of BIGINT range), after the other
    # tables of the batch were already inserted in the transaction.
    pytest.param(candle(received=2 ** 70), (psycopg2.DataError, OverflowError),
                 id="rejected-by-database"),
])
def test_a_bad_record_rolls_back_the_whole_batch(store, bad, error):
    batch = [book(), trade("1"), trade("2"), ticker(), candle(timeframe="5m"), bad]
    with pytest.raises(error):
        store.write(batch)
    assert counts(store) == NOTHING
    # The store is still usable afterwards.
    assert store.write(batch[:-1]) == 5


def test_fetch_orders_by_time_and_filters(store):
    store.write([
        trade("c", timestamp=T0 + 3), trade("a", timestamp=T0 + 1),
        trade("b", timestamp=T0 + 2, symbol="ETH/USD"), trade("d", timestamp=T0, exchange="kraken"),
    ])
    assert [t["id"] for t in store.fetch("trade")] == ["d", "a", "b", "c"]
    assert [t["id"] for t in store.fetch("trade", exchange="bitstamp")] == ["a", "b", "c"]
    assert [t["id"] for t in store.fetch("trade", symbol="BTC/USD", limit=2)] == ["d", "a"]
    assert [t["id"] for t in store.fetch("trade", exchange="bitstamp", symbol="ETH/USD")] == ["b"]
    assert store.count("trade", exchange="bitstamp", symbol="BTC/USD") == 2
    assert store.count("trade", side=None) == 0
    with pytest.raises(ValueError):
        store.count("trade", no_such_column=1)
    with pytest.raises(ValueError):
        store.count("quote")


def test_truncate_empties_every_table(store):
    store.write([book(), trade(), ticker(), candle()])
    assert counts(store) == dict.fromkeys(KINDS, 1)
    store.truncate()
    assert counts(store) == NOTHING
    assert store.write([]) == 0


def write_in_child(store, result):
    result.put(store.write([trade("child")]))


def test_forked_worker_opens_its_own_connection(store):
    assert store.write([trade("parent-1")]) == 1  # the parent now holds a connection
    context = multiprocessing.get_context("fork")
    result = context.Queue()
    child = context.Process(target=write_in_child, args=(store, result))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    assert result.get(timeout=5) == 1
    # The parent's connection was left alone by the child.
    assert store.write([trade("parent-2")]) == 1
    assert store.count("trade") == 3


def test_open_store_is_idempotent_and_sqlite_uses_wal(tmp_path):
    url = f"sqlite:///{tmp_path}/nested/again/store.db"
    first = open_store(url)
    first.write([trade()])
    second = open_store(url)  # tables exist already
    assert second.count("trade") == 1
    first.close()
    second.close()
    with sqlite3.connect(tmp_path / "nested/again/store.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite(url):
    store = open_store(url)
    assert store.write([trade(), trade()]) == 1
    assert store.fetch("trade") == [trade()]
    store.close()


def test_reconnects_after_postgresql_connection_is_killed(pg_schema):
    name = f"store_test_{uuid.uuid4().hex[:8]}"
    store = open_store(with_application_name(POSTGRES_URL, name), schema=pg_schema)
    store.truncate()
    assert store.write([trade("1")]) == 1

    killer = psycopg2.connect(POSTGRES_URL)
    killer.autocommit = True
    with killer.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (name,),
        )
        assert cursor.fetchall() == [(True,)]
        # Wait until the backend is really gone, so the next write meets a dead connection.
        deadline = time.monotonic() + 10
        while True:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,))
            if cursor.fetchone()[0] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
    killer.close()

    assert store.write([trade("2")]) == 1
    assert store.count("trade") == 2
    store.close()


def test_write_new_returns_only_what_was_new(store):
    first = [trade("1"), trade("2")]
    assert store.write_new(first) == first
    assert store.write_new([trade("2"), trade("3"), trade("3")]) == [trade("3")]


def test_bulk_writes_keep_every_rule(store):
    # Enough rows of each kind for PostgreSQL's COPY-and-stage path (dialects.COPY_MIN_ROWS):
    # exact values, NULLs, characters COPY must escape, idempotence, candles' newer-wins, and
    # a batch the database refuses leaving nothing behind and the store usable.
    n = 120
    odd_ids = ["tab\there", "back\\slash", "new\nline", "cr\rhere", "\\N", ""]
    trades = [trade(odd_ids[i] if i < len(odd_ids) else str(i), side=None if i % 2 else "sell",
                    price="0.00000001" if i % 3 else "123456789012345.123456789")
              for i in range(n)]
    books = [book(received=T0 + i, timestamp=None if i % 2 else T0, nonce=None,
                  bids=[["1.5", "2"], ["1", "0.1"]], asks=[]) for i in range(n)]
    tickers = [ticker(received=T0 + i, bid=None) for i in range(n)]
    candles = [candle(timestamp=T0 + 60_000 * i, trades=None if i % 2 else i) for i in range(n)]
    everything = trades + books + tickers + candles
    assert store.write_new(everything) == everything
    assert store.write(everything) == 0
    assert counts(store) == {"order_book": n, "trade": n, "ticker": n, "candle": n}
    assert sorted(map(str, store.fetch("trade", limit=None))) == sorted(map(str, trades))
    assert store.fetch("order_book", limit=None) == books
    assert store.fetch("ticker", limit=None) == tickers
    assert store.fetch("candle", limit=None) == candles

    newer = [candle(timestamp=T0 + 60_000 * i, received=T0 + 5_000, close="106") for i in range(n)]
    older = [candle(timestamp=T0 + 60_000 * i, received=T0 + 2_000, close="1") for i in range(n)]
    assert store.write(newer + older) == n
    assert {c["close"] for c in store.fetch("candle", limit=None)} == {"106"}

    refused = [trade(f"r{i}") for i in range(n)] + [candle(received=2 ** 70)]
    with pytest.raises((psycopg2.DataError, OverflowError)):
        store.write(refused)
    assert store.count("trade") == n
    more = [trade(f"m{i}") for i in range(n)]
    assert store.write(more) == n


def test_str_and_int_subclasses_are_stored_as_their_plain_values(store):
    import enum

    class Side(str, enum.Enum):
        SELL = "sell"

    class Tricky(str):
        pass

    # 60 rows: PostgreSQL's bulk (COPY) path as well as the row-by-row one
    trades = [trade(Tricky(f"t\t{i}"), side=Side.SELL, timestamp=T0 + i) for i in range(60)]
    assert store.write(trades) == 60
    stored = store.fetch("trade", limit=None)
    assert {row["side"] for row in stored} == {"sell"}
    assert sorted(row["id"] for row in stored) == sorted(f"t\t{i}" for i in range(60))
