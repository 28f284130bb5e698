"""delay: at a steady 1,000 trade frames/s (simulator -> streamer process -> RabbitMQ -> worker
-> PostgreSQL), how late each frame's row is: from the frame's receive time (the streamer's
stamp) to (a) the commit of its row and (b) its message on Redis pub/sub; p50, p99 and max.
Floor, in the same run: the same frames at the same rate sent to the no-op task
(bench.floor.noop_ingest), from receive time to the task running.

The commit is seen exactly: the benchmark puts a trigger on its own copy of the trades table
that NOTIFYs each row's id and receive time, and PostgreSQL delivers a NOTIFY at the commit.
Streamer batching is the product's default (100 frames or 10 ms, whichever comes first).
"""
from __future__ import annotations

import select
import statistics
import threading
import time

import orjson
import psycopg2
import redis

from . import ingest
from .harness import figure, percentile

RATE = 1000          # frames per second
TICK = 0.002         # the simulator sends 2 frames every 2 ms
BATCH_SIZE, BATCH_MS = 100, 10   # the product's defaults

NOTIFY_TRIGGER = f"""
CREATE OR REPLACE FUNCTION {ingest.SCHEMA}.bench_notify_row() RETURNS trigger AS $$
BEGIN
  -- payloads must differ: PostgreSQL folds identical notifications of one transaction
  PERFORM pg_notify('bench_rows', NEW.id || ':' || NEW.received);
  RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER bench_notify_row AFTER INSERT ON {ingest.SCHEMA}.trades
  FOR EACH ROW EXECUTE FUNCTION {ingest.SCHEMA}.bench_notify_row();
"""


class CommitListener:
    """LISTENs for the trigger's notifications: one per committed trade row."""

    def __init__(self):
        self.delays: dict[str, float] = {}
        self.connection = psycopg2.connect(ingest.PLAIN_DATABASE_URL)
        self.connection.autocommit = True
        with self.connection.cursor() as cursor:
            cursor.execute(NOTIFY_TRIGGER)
            cursor.execute("LISTEN bench_rows")
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        while not self.stopping.is_set():
            if select.select([self.connection], [], [], 0.1)[0]:
                self.connection.poll()
                now = time.time() * 1000
                for note in self.connection.notifies:
                    trade_id, received = note.payload.rsplit(":", 1)
                    self.delays[trade_id] = now - int(received)
                self.connection.notifies.clear()

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.connection.close()


class PubSubListener:
    """Subscribes to the symbol's trade channel: one message per new row, after its commit."""

    def __init__(self, symbol: str):
        self.delays: dict[str, float] = {}
        self.pubsub = redis.Redis.from_url(ingest.REDIS_URL).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(**{f"collector:bitstamp:trade:{symbol}": self._on_message})
        self.thread = self.pubsub.run_in_thread(sleep_time=0.001, daemon=True)

    def _on_message(self, message) -> None:
        now = time.time() * 1000
        record = orjson.loads(message["data"])
        self.delays[record["id"]] = now - record["received"]

    def close(self) -> None:
        self.thread.stop()
        self.thread.join(2)
        self.pubsub.close()


def steady(sim, task: str, seconds: float, counters: ingest.Counters) -> set[str]:
    """RATE trade frames/s for `seconds` through `task`, and wait until all arrived; returns
    the trade ids sent (only those count: pub/sub channels are shared by every Redis user)."""
    n = int(RATE * seconds)
    per_tick = max(1, round(RATE * TICK))
    with ingest.streamer_process(sim, task, "trades", "btcusd", "BTC/USD", BATCH_SIZE, BATCH_MS):
        time.sleep(0.3)
        before = counters.count(task, "trade")
        ids, tick = set(), time.monotonic()
        while len(ids) < n:
            ids.update(map(str, sim.ws_blast_trades("btcusd", min(per_tick, n - len(ids)))))
            tick += TICK
            time.sleep(max(0.0, tick - time.monotonic()))
        ingest.wait_until(lambda: counters.count(task, "trade") - before, n, seconds=60)
    return ids


def run(quick: bool = False) -> dict:
    ingest.prepare()
    from proj.sim import Simulator

    seconds = 3 if quick else 20
    try:
        with Simulator(port=0).start() as sim, ingest.floor_worker():
            ws = sim.ws_exchange("bitstamp")
            ws.trade_interval = None
            ws.book_interval = None
            counters = ingest.Counters()
            # the listeners run through both phases, so that this process is as busy for both
            commits, published = CommitListener(), PubSubListener("BTC/USD")
            try:
                floor_sent = steady(sim, ingest.FLOOR_TASK, seconds, counters)
                floor = counters.floor_delays()
                sent = steady(sim, ingest.INGEST_TASK, seconds, counters)
                time.sleep(0.2)   # the last notifications in flight
            finally:
                commits.close()
                published.close()
    finally:
        ingest.drop_schema()
    rows, notes = [], []
    if len(floor) < len(floor_sent):
        notes.append(f"the no-op task got {len(floor)} of {len(floor_sent)} frames in time")
    for what, seen in (("receive → committed row", commits.delays),
                       ("receive → pub/sub message", published.delays)):
        delays = [seen[trade_id] for trade_id in sent if trade_id in seen]
        if len(delays) < len(sent):   # the missing ones are the slowest: the tail would lie
            notes.append(f"{what}: {len(delays)} of {len(sent)} frames seen in time")
        for stat, target in (("p50", 15), ("p99", 60), ("max", None)):
            value, floor_value = _stat(delays, stat), _stat(floor, stat)
            rows.append(figure(f"{what}, {stat}", value, "ms", f"receive → no-op task, {stat}",
                               floor_value, f"≤ {target} ms" if target else "",
                               (value <= target) if target else None, frames=len(delays)))
    return {"name": "delay", "runs": 1, "unit": "ms", "rows": rows, "notes": notes}


def _stat(delays: list[float], stat: str) -> float:
    if not delays:
        return float("nan")
    if stat == "p50":
        return statistics.median(delays)
    if stat == "p99":
        return percentile(delays, 99)
    return max(delays)
