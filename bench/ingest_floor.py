"""The floor of the ingest benchmarks: a Celery task that takes the same batches as
collector.ingest and does nothing with them but say it got them.

A worker started with `-A bench.ingest_floor` serves both this task and the project's own
(this module registers it on the project's app). Each batch adds its frame count to a Redis
counter and its frames' receive-to-task delays to a Redis list: one round trip, so that the
benchmark can tell when every frame arrived without the floor doing any real work.
"""
from __future__ import annotations

import os
import time

import redis

from proj.celery import app

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
FRAMES_KEY = "bench:floor:frames"
DELAYS_KEY = "bench:floor:delays"
_client = None


@app.task(name="bench.noop_ingest", ignore_result=True)
def noop_ingest(exchange, frames):
    global _client
    now_ms = time.time() * 1000
    if _client is None:
        _client = redis.Redis.from_url(REDIS_URL)
    with _client.pipeline(transaction=False) as pipe:
        pipe.incrby(FRAMES_KEY, len(frames))
        pipe.rpush(DELAYS_KEY, *(round(now_ms - received, 2) for received, _ in frames))
        pipe.execute()
