"""Live fan-out of stored records: Redis pub/sub, the newest book per symbol, backend jobs.

- PUBLISH collector:{exchange}:{type}:{symbol} <record JSON>, for every record.
- HASH collector:book:{exchange}:{symbol} {at, book}: the newest book, replaced only by a
  newer one (exchange time, else receive time), so that batches finishing out of order on
  several workers never put an older book over a newer one. Compared in Redis, atomically.
- When COLLECTOR_BACKEND_TASK is set, each record is also sent as that task to
  COLLECTOR_BACKEND_QUEUE, for a backend that consumes data as Celery jobs.
One Redis round trip per batch (a pipeline).
"""
from __future__ import annotations

import os

import orjson

from . import settings

_NEWER_BOOK = """
local current = redis.call('HGET', KEYS[1], 'at')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'at', ARGV[1], 'book', ARGV[2])
return 1
"""

_redis = None


def _client():
    global _redis
    if _redis is None or _redis[0] != os.getpid():   # never share a socket across fork
        import redis
        client = redis.Redis.from_url(settings.redis_url(), socket_timeout=5,
                                      socket_connect_timeout=5)
        _redis = (os.getpid(), client, client.register_script(_NEWER_BOOK))
    return _redis[1], _redis[2]


def channel_name(record: dict) -> str:
    return f"collector:{record['exchange']}:{record['type']}:{record['symbol']}"


def latest_book_key(exchange: str, symbol: str) -> str:
    return f"collector:book:{exchange}:{symbol}"


def fan_out(records: list[dict]) -> None:
    if not records:
        return
    if settings.redis_url():
        client, newer_book = _client()
        with client.pipeline(transaction=False) as pipe:
            for record in records:
                payload = orjson.dumps(record)
                pipe.publish(channel_name(record), payload)
                if record["type"] == "order_book":
                    at = record["timestamp"] if record["timestamp"] is not None else record["received"]
                    newer_book(keys=[latest_book_key(record["exchange"], record["symbol"])],
                               args=[at, payload], client=pipe)
            pipe.execute()
    backend = settings.backend_task()
    if backend:
        from .celery import app
        name, queue = backend
        for record in records:
            app.send_task(name, args=[record], queue=queue)


def read_latest_book(exchange: str, symbol: str) -> dict | None:
    client, _ = _client()
    raw = client.hget(latest_book_key(exchange, symbol), "book")
    return orjson.loads(raw) if raw else None
