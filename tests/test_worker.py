"""Through a real worker: RabbitMQ broker, Redis results, PostgreSQL store, the simulator."""
import time
from datetime import datetime, timedelta, timezone

import pytest
from celery import Celery
from celery.exceptions import TaskRevokedError
from celery.result import AsyncResult

from proj.collect import fetch_raw
from tasks.fetch import fetch
from tasks.poll import poll, publish, validate

from .conftest import RABBIT_URL, REDIS_URL
from .schema import assert_valid

pytestmark = pytest.mark.services
BOOK = "/api/v2/order_book/btcusd/"


def test_fetch_delay_returns_a_normalized_book(worker, fresh_sim):
    book = fetch.delay("bitstamp", "order_book", "BTC/USD").get(timeout=30)
    assert_valid(book)
    assert book["exchange"] == "bitstamp" and book["symbol"] == "BTC/USD"


def test_backend_without_this_code_calls_by_name(worker, fresh_sim):
    backend = Celery(broker=RABBIT_URL, backend=REDIS_URL)   # no routes, no config of ours
    try:
        result = backend.send_task("collector.fetch", args=["bitstamp", "candles", "BTC/USD"],
                                   kwargs={"timeframe": "5m", "limit": 3})
        candles = result.get(timeout=30)
    finally:
        backend.close()
    assert_valid(candles)
    assert len(candles) == 3


def test_hanging_exchange_is_timeout_not_a_hang(worker, fresh_sim):
    fresh_sim.set_fault(BOOK, "hang", seconds=30)
    result = fetch.delay("bitstamp", "order_book", "BTC/USD", timeout=1, attempts=2).get(timeout=60)
    assert result["err"] == "timeout" and result["attempts"] == 2
    assert_valid(result)
    assert fresh_sim.request_count(BOOK) == 2   # retried once, through the broker


def test_errors_are_returned_never_raised(worker, fresh_sim):
    fresh_sim.set_fault(BOOK, "html")
    result = fetch.delay("bitstamp", "order_book", "BTC/USD", attempts=1).get(timeout=30)
    assert result["err"] == "content_type"
    assert fetch.delay("bitstamp", "ticker", "NOPE").get(timeout=30)["err"] == "unsupported"
    for bad in ({"limit": "5"}, {"limit": -2}, {"timeout": "2"}, {"attempts": 0}):
        result = fetch.delay("bitstamp", "candles", "BTC/USD", **bad).get(timeout=30)
        assert result["err"] == "unsupported", (bad, result)


def test_poll_chain_stores_rows_in_postgresql(worker, fresh_sim, store):
    chain_id = poll.apply_async(("bitstamp", "order_book", "BTC/USD"), expires=30).get(timeout=30)
    outcome = AsyncResult(chain_id, app=worker).get(timeout=30)
    assert outcome == {"stored": 1, "received": 1}
    assert store.count("order_book", exchange="bitstamp", symbol="BTC/USD") == 1

    chain_id = poll.apply_async(("bitstamp", "trades", "ETH/USD"), expires=30).get(timeout=30)
    outcome = AsyncResult(chain_id, app=worker).get(timeout=30)
    assert outcome["stored"] == outcome["received"] > 0
    assert store.count("trade", symbol="ETH/USD") == outcome["stored"]


def test_same_trades_twice_leave_one_row_each(worker, fresh_sim, store):
    raw = fetch_raw("bitstamp", "trades", "BTC/USD", base_url=fresh_sim.url)
    first = (validate.s(raw) | publish.s()).apply_async().get(timeout=30)
    again = (validate.s(raw) | publish.s()).apply_async().get(timeout=30)   # a redelivery
    assert first["stored"] == first["received"] > 0
    assert again == {"stored": 0, "received": first["received"]}
    assert store.count("trade", symbol="BTC/USD") == first["received"]


def test_poll_error_travels_down_the_chain_and_stores_nothing(worker, fresh_sim, store):
    fresh_sim.set_fault(BOOK, "wrong_shape")
    chain_id = poll.apply_async(("bitstamp", "order_book", "BTC/USD"), expires=30).get(timeout=30)
    outcome = AsyncResult(chain_id, app=worker).get(timeout=30)
    assert outcome["err"] == "bad_schema"
    assert store.count("order_book") == 0


def test_stale_poll_is_dropped_not_run_late(worker, fresh_sim):
    past = datetime.now(timezone.utc) - timedelta(seconds=5)
    result = poll.apply_async(("bitstamp", "ticker", "BTC/USD"), expires=past)
    with pytest.raises(TaskRevokedError):
        result.get(timeout=30)
    assert fresh_sim.request_count() == 0


def test_poll_deadline_reaches_the_fetch_retries(worker, fresh_sim):
    # The exchange says "come back in 3 s"; the poll's interval (its expires) is 1.5 s, so
    # the retry would run late: it is dropped instead, and the exchange is asked only once.
    fresh_sim.set_fault("/api/v2/ticker/btcusd/", "status", status=429, retry_after=3)
    poll.apply_async(("bitstamp", "ticker", "BTC/USD"), expires=1.5).get(timeout=30)
    time.sleep(5)
    assert fresh_sim.request_count("/api/v2/ticker/btcusd/") == 1
