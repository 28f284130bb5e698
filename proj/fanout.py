"""Live fan-out of stored records: Redis pub/sub, the newest book per symbol, backend jobs.

- PUBLISH collector:{exchange}:{type}:{symbol} <record JSON>, for every record.
- HASH collector:book:{exchange}:{symbol} {at, book}: the newest book, replaced only by a
  newer one (exchange time, else receive time), so that batches finishing out of order on
  several workers never put an older book over a newer one. Compared in Redis, atomically.
- When COLLECTOR_BACKEND_TASK is set, each record is also sent as that task to
  COLLECTOR_BACKEND_QUEUE, for a backend that consumes data as Celery jobs.
One Redis round trip per batch (one Lua script call).
"""
from __future__ import annotations

import os

import orjson

from . import settings

# The whole batch in one command: the publishes, then each book offered to its newest-book
# hash. KEYS: the hashes. ARGV: n, n × (channel, payload), then per key (at, payload).
# One call instead of a command a record spares the worker packing and parsing N commands.
_FAN_OUT = """
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
  redis.call('PUBLISH', ARGV[2 + 2 * i], ARGV[3 + 2 * i])
end
local base = 2 + 2 * n
for k = 1, #KEYS do
  local at, book = ARGV[base + 2 * (k - 1)], ARGV[base + 2 * k - 1]
  local current = redis.call('HGET', KEYS[k], 'at')
  if not current or tonumber(current) < tonumber(at) then
    redis.call('HSET', KEYS[k], 'at', at, 'book', book)
  end
end
return n
"""

_redis = None


def _client():
    global _redis
    if _redis is None or _redis[0] != os.getpid():   # never share a socket across fork
        import redis
        client = redis.Redis.from_url(settings.redis_url(), socket_timeout=5,
                                      socket_connect_timeout=5)
        _redis = (os.getpid(), client, client.register_script(_FAN_OUT))
    return _redis[1], _redis[2]


def channel_name(record: dict) -> str:
    return f"collector:{record['exchange']}:{record['type']}:{record['symbol']}"


def latest_book_key(exchange: str, symbol: str) -> str:
    return f"collector:book:{exchange}:{symbol}"


def fan_out(records: list[dict]) -> None:
    if not records:
        return
    if settings.redis_url():
        _, fan_out_script = _client()
        published, newest = [], {}
        for record in records:
            payload = orjson.dumps(record)
            published += (channel_name(record), payload)
            if record["type"] == "order_book":
                # only a batch's newest book of a symbol can win (the first of equals, as in Redis)
                at = record["timestamp"] if record["timestamp"] is not None else record["received"]
                key = latest_book_key(record["exchange"], record["symbol"])
                if key not in newest or at > newest[key][0]:
                    newest[key] = (at, payload)
        book_args = [value for offer in newest.values() for value in offer]
        fan_out_script(keys=list(newest), args=[len(records), *published, *book_args])
    backend = settings.backend_task()
    if backend:
        from .celery import app
        name, queue = backend
        for record in records:
            app.send_task(name, args=[record], queue=queue, ignore_result=True)   # not ours to wait for


def read_latest_book(exchange: str, symbol: str) -> dict | None:
    client, _ = _client()
    raw = client.hget(latest_book_key(exchange, symbol), "book")
    return orjson.loads(raw) if raw else None
