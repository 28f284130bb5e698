"""No-op Celery tasks for the benchmarks' floors, registered on the project's app.

A worker started with `-A bench.floor` (harness.Worker(app="bench.floor")) runs the project's
tasks and these.

`bench.noop_ingest` takes the same batches as collector.ingest and does nothing with them but
say it got them: each batch adds its frame count to a Redis counter and its frames'
receive-to-task delays to a Redis list, in one round trip, so that the ingest and delay
benchmarks can tell when every frame arrived without the floor doing any real work.
 `bench.noop_poll` mirrors collector.poll's shape exactly: a poll task on the
`poll` queue that starts a three-step chain (fetch with the poll's deadline, validate, both
on `poll`; publish on `publish`, its result stored), with nothing done in any step. What
that sustains is Celery's (and the broker's) own ceiling for beat-style polls on this machine.
"""
import os
import time

import redis
from celery import chain

from proj.celery import app

INGEST_REDIS_URL = os.environ.get("BENCH_INGEST_REDIS_URL", "redis://127.0.0.1:6379/12")
FRAMES_KEY = "bench:floor:frames"
DELAYS_KEY = "bench:floor:delays"
_ingest_redis = None


@app.task(name="bench.noop_ingest", ignore_result=True, queue="ingest")
def noop_ingest(exchange, frames):
    global _ingest_redis
    now_ms = time.time() * 1000
    if _ingest_redis is None:
        _ingest_redis = redis.Redis.from_url(INGEST_REDIS_URL)
    with _ingest_redis.pipeline(transaction=False) as pipe:
        pipe.incrby(FRAMES_KEY, len(frames))
        pipe.rpush(DELAYS_KEY, *(round(now_ms - received, 2) for received, _ in frames))
        pipe.execute()


@app.task(name="bench.noop_poll", bind=True, queue="poll")
def noop_poll(self, exchange, type, symbol, timeframe=None, limit=None):
    deadline = self.request.expires
    steps = chain(
        noop_fetch.s(exchange, type, symbol).set(expires=deadline),
        noop_validate.s(),
        noop_publish.s(),
    )
    return steps.apply_async().id


@app.task(name="bench.noop_fetch", ignore_result=True, queue="poll")
def noop_fetch(exchange, type, symbol):
    return {"exchange": exchange, "type": type, "symbol": symbol}


@app.task(name="bench.noop_validate", ignore_result=True, queue="poll")
def noop_validate(raw):
    return raw


@app.task(name="bench.noop_publish", queue="publish")
def noop_publish(outcome):
    return {"stored": 0, "received": 1}


@app.task(name="bench.noop_single", queue="poll")
def noop_single(exchange, type, symbol, timeframe=None, limit=None):
    """A poll as one task (no chain): what one Celery hop costs, for comparison."""
    return {"stored": 0, "received": 1}
