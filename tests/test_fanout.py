"""Live fan-out on the real Redis: pub/sub per channel, newest book wins, whatever the order."""
import time
import uuid

import orjson
import pytest
import redis

from proj import fanout

pytestmark = pytest.mark.services
REDIS = "redis://127.0.0.1:6379/13"


@pytest.fixture
def redis_url(monkeypatch):
    monkeypatch.setenv("COLLECTOR_REDIS_URL", REDIS)
    yield REDIS


def book(symbol, timestamp, received=1700000000000):
    return {"type": "order_book", "exchange": "bitstamp", "symbol": symbol, "timestamp": timestamp,
            "received": received, "nonce": None, "bids": [["1", "1"]], "asks": [["2", "1"]]}


def test_newest_book_is_kept_whatever_order_batches_finish_in(redis_url):
    symbol = f"T{uuid.uuid4().hex[:6].upper()}/USD"
    fanout.fan_out([book(symbol, 1700000000300)])
    fanout.fan_out([book(symbol, 1700000000100), book(symbol, 1700000000200)])  # older, later
    assert fanout.read_latest_book("bitstamp", symbol)["timestamp"] == 1700000000300
    fanout.fan_out([book(symbol, 1700000000400)])
    assert fanout.read_latest_book("bitstamp", symbol)["timestamp"] == 1700000000400


def test_records_are_published_per_channel(redis_url):
    symbol = f"T{uuid.uuid4().hex[:6].upper()}/USD"
    pubsub = redis.Redis.from_url(REDIS).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(f"collector:bitstamp:order_book:{symbol}")
    time.sleep(0.05)
    fanout.fan_out([book(symbol, 1700000000500)])
    message = None
    deadline = time.monotonic() + 5
    while message is None and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
    assert message and orjson.loads(message["data"])["timestamp"] == 1700000000500
    pubsub.close()


def test_no_redis_configured_means_no_fan_out(monkeypatch):
    monkeypatch.delenv("COLLECTOR_REDIS_URL", raising=False)
    monkeypatch.delenv("COLLECTOR_BACKEND_TASK", raising=False)
    fanout.fan_out([book("BTC/USD", 1700000000500)])   # nothing to reach, nothing raised
